"""
The YAML reference, generated from the block registry: every block type
with its inputs, output, interfaces and parameters (default, unit, what it
accepts), and the units a value may carry.  The documentation includes it
at build time (``docs/_ext/pipeline_reference.py``), so it cannot fall
behind the code.
"""

import inspect
import re

from zope.interface import implementedBy

from ..interfaces import KIND_INTERFACES, ISink
from ..registry import block_types
from .schema import param_specs
from ..units import UNITS, accepted_suffixes
from .validate import output_kind_of

__all__ = ["reference_rst", "block_reference", "units_reference"]

_PARAM_FIELD = re.compile(r"^:param (\w+):\s*(.*)$")


def _summary(doc):
    """
    The first paragraph of a docstring, on one line.
    """
    paragraph = doc.split("\n\n", 1)[0] if doc else ""
    return " ".join(paragraph.split())


def _param_descriptions(doc):
    """
    ``{name: text}`` from the ``:param name: text`` fields of a docstring.
    """
    found, current = {}, None
    for line in (doc or "").splitlines():
        match = _PARAM_FIELD.match(line.strip())
        if match:
            current = match.group(1)
            found[current] = match.group(2)
        elif current and line.startswith(" ") and line.strip() and not line.strip().startswith(":"):
            found[current] += " " + line.strip()
        else:
            current = None
    return found


def _literal(value):
    if value is inspect.Parameter.empty:
        return "(required)"
    if value is None:
        return "``null``"
    if isinstance(value, bool):
        return f"``{str(value).lower()}``"
    if isinstance(value, tuple):
        value = [list(item) if isinstance(item, tuple) else item for item in value]
    if callable(value):
        return f"``{getattr(value, '__name__', repr(value))}``"
    if isinstance(value, str) and value.strip() == value and value and "`" not in value:
        return f"``{value}``"
    return f"``{value!r}``"


def _cell(text):
    return " ".join(str(text).split()).replace("|", "\\|") or "\\-"


def block_reference(name, factory):
    """
    The reference section of one block type, as reStructuredText lines.
    """
    doc = inspect.getdoc(factory) or ""
    lines = [name, "-" * len(name), "", _summary(doc) or "(no description)", ""]
    requires = tuple(getattr(factory, "requires", ()))
    if not requires:
        inputs = "none (a source)"
    elif getattr(factory, "variadic", False):
        inputs = f"one or more, each providing ``{requires[0].__name__}``"
    else:
        inputs = ", ".join(f"``{iface.__name__}``" for iface in requires)
    kind = output_kind_of(factory, ["(its first input's kind)"])
    if ISink.implementedBy(factory):
        output = "none (a sink: it runs the chain behind it)"
    elif kind in KIND_INTERFACES:
        output = f"``{kind}`` (``{KIND_INTERFACES[kind].__name__}``)"
    else:
        output = kind if kind != "?" else "decided when the block is built"
    provided = sorted(iface.__name__ for iface in implementedBy(factory).flattened()
                      if iface.__module__ == "pyrf_blocks.interfaces")
    lines += [f"* **inputs:** {inputs}",
              f"* **output:** {output}",
              f"* **interfaces:** {', '.join(f'``{p}``' for p in provided) or 'none'}",
              ""]
    specs = param_specs(factory)
    if not specs:
        lines += ["No parameters.", ""]
        return lines
    described = {}
    for cls in getattr(factory, "__mro__", (factory,)):
        # Parameters handed on to a base class are described there.
        for param, text in _param_descriptions(inspect.getdoc(cls)).items():
            described.setdefault(param, text)
    lines += [".. list-table::", "   :header-rows: 1", "   :widths: 20 25 20 35", "",
              "   * - parameter", "     - accepts", "     - default", "     - meaning"]
    for param, spec in specs.items():
        meaning = described.get(param, "")
        if spec.range_text:
            meaning = f"{meaning} (Accepted: {spec.range_text}.)".strip()
        lines += [f"   * - ``{param}``", f"     - {_cell(spec.type_text)}",
                  f"     - {_cell(_literal(spec.default))}",
                  f"     - {_cell(meaning)}"]
    return lines + [""]


def units_reference():
    """
    The units table, as reStructuredText lines.
    """
    lines = [".. list-table::", "   :header-rows: 1", "   :widths: 15 25 60", "",
             "   * - unit", "     - measures", "     - suffixes (a bare number is in the unit)"]
    for name, unit in UNITS.items():
        lines += [f"   * - ``{name}``", f"     - {unit.what}",
                  f"     - {_cell(accepted_suffixes(name))}"]
    return lines + [""]


def reference_rst():
    """
    The whole generated reference: the units, then every registered block
    type in name order.
    """
    lines = ["Units", "-----", "",
             "A parameter with a unit takes a number in that unit or text with "
             "a suffix: ``2.4GHz``, ``-20dBm``, ``250ms``, ``5m`` (minutes), "
             "``1Ki`` (1024).  ``count`` values must come out whole.", ""]
    lines += units_reference()
    for name, factory in block_types().items():
        lines += block_reference(name, factory)
    return "\n".join(lines) + "\n"
