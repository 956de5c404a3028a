"""
Block parameters: what each one accepts, declared once on the block class,
and checked the same way wherever a value comes from: a Python call
(``fft_block(wsa, size="1Ki")``), a pipeline file (``pyrf-blocks validate``
reports every refusal at its line and column) or a worker's ``POST /blocks``
(a 400 naming the parameter, before anything is created or allocated).

A block class declares its rules in ``param_rules``::

    param_rules = {
        "size": Param("count", minimum=2, maximum=MAX_FFT_SIZE),
        "window": Param(types=(str, list), check=check_window),
        "overlap": Param("count", minimum=0, below="size"),
    }

A bound (``minimum``, ``maximum``, ``above``, ``below``) is a number or the
name of another parameter.  ``param_units`` (``{"sample_rate": "Hz"}``) is
the short form of rules that give only a unit.  A parameter without a rule
accepts, from a file or a request, values of its default's type.

Python callers may give numpy numbers, tuples for lists and unit strings
(``center_frequency="2.4GHz"``); files and requests are read strictly
(``size: 1024.5`` is refused, ``seed: "1"`` is not a number).
"""

import inspect
import math
import numbers

from .errors import ParameterError
from .messages import shown as _shown
from .units import UNITS, parse_quantity

__all__ = ["Param", "ParamSpec", "param_specs", "check_params", "relation_problems",
           "convert_arguments", "MAX_SECONDS", "check_seconds"]

#: Times a user gives a worker or a command (a worker's ``--lease``,
#: ``emulate --duration``) are less than this many seconds (11.6 days):
#: beyond it a time is a typo, or "never", which leaving it out says.
MAX_SECONDS = 1e6


def check_seconds(value, name, maximum=MAX_SECONDS):
    """
    ``value``, a time in seconds more than 0 and less than ``maximum``;
    ``ValueError`` naming it as ``name`` (``"--lease"``) and the range
    otherwise (not a number, 0, negative, NaN, infinite, too long).
    """
    if (isinstance(value, bool) or not isinstance(value, (int, float))
            or not 0 < value < maximum):
        raise ValueError(f"{name} must be more than 0 and less than {maximum:g} seconds, "
                         f"got {value!r}")
    return value


class Param:
    """
    The rule of one parameter.

    :param unit: a unit of :data:`~pyrf_blocks.units.UNITS`
        (values may then be written ``"2.4GHz"``), or a tuple of units for a
        list of rows (``tones: [[1MHz, -20dBm]]``).
    :param minimum: smallest value accepted (a number or a parameter name).
    :param maximum: largest value accepted.
    :param above: values must be greater than this.
    :param below: values must be less than this.
    :param choices: the only values accepted.
    :param check: ``check(value)`` raises ``ValueError`` (its message says
        why, without the parameter's name) or returns the value to use.
    :param nullable: ``None`` (YAML ``null``) is accepted too.
    :param types: the Python types a file or request may give (by default,
        the type of the default value).
    :param python_only: only Python code can give it (a stream, a function).
    """

    def __init__(self, unit=None, *, minimum=None, maximum=None, above=None, below=None,
                 choices=None, check=None, nullable=False, types=None, python_only=False):
        self.unit = unit
        self.minimum, self.maximum, self.above, self.below = minimum, maximum, above, below
        self.choices = tuple(choices) if choices is not None else None
        self.check = check
        self.nullable = nullable
        self.types = types
        self.python_only = python_only

    def __repr__(self):
        return f"<Param {self.unit or ''}>"

    def bounds(self):
        """
        ``(word, bound, accepts)`` of every bound set: ``accepts(value,
        bound)`` says whether ``value`` is within it.
        """
        tests = (("minimum", self.minimum, lambda v, b: v >= b, "at least"),
                 ("maximum", self.maximum, lambda v, b: v <= b, "at most"),
                 ("above", self.above, lambda v, b: v > b, "greater than"),
                 ("below", self.below, lambda v, b: v < b, "less than"))
        return [(words, bound, accepts) for _, bound, accepts, words in tests
                if bound is not None]


_TYPE_WORDS = {bool: "true or false", int: "an integer", float: "a number",
               str: "a string", list: "a list", dict: "a mapping"}
_YAML_TYPES = (bool, int, float, str, list, tuple, dict)


def _describe(value):
    if value is None:
        return "null"
    return f"{_shown(value)} ({_TYPE_WORDS.get(type(value), type(value).__name__)})"


class ParamSpec:
    """
    One parameter of a block type: its name, default and :class:`Param`.
    """

    def __init__(self, name, default, unit=None, python_only=False, rule=None):
        self.name = name
        self.default = default
        self.rule = rule or Param(unit, python_only=python_only)
        self.required = default is inspect.Parameter.empty
        self.unit = self.rule.unit
        # A default YAML cannot write (a function, an object) means a value
        # only Python can give.
        self.python_only = self.rule.python_only or not (
            self.required or default is None or type(default) in _YAML_TYPES)
        self.nullable = default is None or self.rule.nullable

    def __repr__(self):
        return f"<ParamSpec {self.name} {self.type_text}>"

    @property
    def declared(self):
        """
        Whether the block declares a rule for it (a unit, bounds, a check):
        only those are checked in Python calls.
        """
        rule = self.rule
        return bool(rule.unit or rule.bounds() or rule.choices or rule.check or rule.types)

    @property
    def type_text(self):
        """
        What the parameter accepts, in words for messages and docs.
        """
        if self.python_only:
            return "Python only"
        rule = self.rule
        if isinstance(self.unit, tuple):
            text = "list of [" + ", ".join(self.unit) + "]"
        elif self.unit == "count":
            text = "count"
        elif self.unit is not None:
            text = f"quantity in {self.unit}"
        elif rule.choices:
            text = "one of " + ", ".join(map(str, rule.choices))
        elif rule.types:
            text = " or ".join(_TYPE_WORDS.get(t, t.__name__) for t in rule.types)
        else:
            text = _TYPE_WORDS.get(self._python_type(), "any value")
        return text + (" or null" if self.nullable and text != "any value" else "")

    @property
    def range_text(self):
        """
        The bounds in words (``at least 2 and at most 16777216``), or ``""``.
        """
        return " and ".join(f"{words} {bound}" for words, bound, _ in self.rule.bounds())

    def _python_type(self):
        if self.required or self.default is None:
            return None
        if isinstance(self.default, (tuple, list)):
            return list
        return type(self.default)

    def check(self, value, strict=True):
        """
        ``value`` converted to what the block takes, after every rule of
        its own (bounds naming other parameters: :func:`check_params`).

        :param strict: read as from a file or request (types as YAML and
            JSON write them); otherwise as a Python call gives them.
        :raises ValueError: with a message that starts with the name.
        """
        name = self.name
        if strict and self.python_only:
            raise ValueError(f"{name} can only be given in Python, not in a "
                             "pipeline file")
        if value is None and self.nullable:
            return None
        if not strict:
            value = _plain_number(value)
        value = self._typed(value, strict)
        rule = self.rule
        if rule.choices is not None and value not in rule.choices:
            raise ValueError(f"{name}: {_shown(value)} is not one of "
                             f"{', '.join(map(repr, rule.choices))}")
        for words, bound, accepts in rule.bounds():
            try:
                fine = isinstance(bound, str) or accepts(value, bound)
            except TypeError:
                raise ValueError(f"{name}: expected a number, got {_describe(value)}") from None
            if not fine:
                raise ValueError(f"{name}: must be {words} {bound}, got {_shown(value)}")
        if isinstance(value, float) and not math.isfinite(value):
            raise ValueError(f"{name}: {_shown(value)} is not a finite number")
        if rule.check is not None:
            try:
                checked = rule.check(value)
            except (TypeError, ValueError) as error:
                raise ValueError(f"{name}: {error}") from None
            value = value if checked is None else checked
        return value

    def _typed(self, value, strict):
        name = self.name
        if isinstance(self.unit, tuple):
            return self._check_rows(value, strict)
        if self.unit is not None:
            return parse_quantity(value, self.unit, name)
        if self.rule.types is not None:
            wanted = self.rule.types
            if not strict:
                return value  # Python may give more (a tuple); the check decides
            if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
                raise ValueError(f"{name}: expected "
                                 f"{' or '.join(_TYPE_WORDS.get(t, t.__name__) for t in wanted)}"
                                 f", got {_describe(value)}")
            return value
        wanted = self._python_type()
        if wanted is None or not strict:
            return value
        if wanted is float and isinstance(value, int) and not isinstance(value, bool):
            try:
                return float(value)
            except OverflowError:
                raise ValueError(f"{name}: {_shown(value)} is too large") from None
        if wanted is list and isinstance(value, list):
            return value
        if type(value) is not wanted:
            raise ValueError(f"{name}: expected {_TYPE_WORDS[wanted]}, got "
                             f"{_describe(value)}")
        return value

    def _check_rows(self, value, strict):
        units = self.unit
        shape = "[" + ", ".join(units) + "]"
        lists = (list,) if strict else (list, tuple)
        if not isinstance(value, lists):
            raise ValueError(f"{self.name}: expected a list of {shape} rows, "
                             f"got {_describe(value)}")
        rows = []
        for number, row in enumerate(value, 1):
            field = f"{self.name} row {number}"
            if not isinstance(row, lists) or len(row) != len(units):
                raise ValueError(f"{field}: expected {shape}, got {_shown(row)}")
            rows.append(tuple(parse_quantity(item if strict else _plain_number(item), unit, field)
                              for item, unit in zip(row, units)))
        return rows


def _plain_number(value):
    # numpy's integers are not ints; its floats are floats already.
    if isinstance(value, numbers.Integral) and not isinstance(value, (bool, int)):
        return int(value)
    if isinstance(value, numbers.Real) and not isinstance(value, (bool, int, float)):
        return float(value)
    return value


def _keyword_parameters(factory):
    from .registry import parameters
    return parameters(factory)


def param_specs(factory):
    """
    ``{name: ParamSpec}`` for every keyword parameter of a block type, with
    the rules of its ``param_rules`` and ``param_units`` (those of its base
    classes too).

    :raises TypeError: when a rule names a parameter the type does not take
        or a unit that does not exist.
    """
    cached = vars(factory).get("_param_specs_cache") if isinstance(factory, type) else None
    if cached is not None:
        return cached
    rules, origin = {}, {}
    owners = [vars(cls) for cls in reversed(getattr(factory, "__mro__", ()))]
    if not isinstance(factory, type):
        owners.append({key: getattr(factory, key, None) for key in ("param_units",
                                                                     "param_rules")})
    for owner in owners:
        for name, unit in (owner.get("param_units") or {}).items():
            rules[name], origin[name] = Param(unit), "param_units"
        for name, rule in (owner.get("param_rules") or {}).items():
            rules[name], origin[name] = rule, "param_rules"
    python_only = set(getattr(factory, "python_only_params", ()))
    defaults = _keyword_parameters(factory)
    for name, rule in rules.items():
        where = f"{factory.__name__}.{origin[name]}"
        if name not in defaults:
            raise TypeError(f"{where} names {name!r}, which is not one of its parameters")
        for part in rule.unit if isinstance(rule.unit, tuple) else (rule.unit,):
            if part is not None and part not in UNITS:
                raise TypeError(f"{where}: unknown unit {part!r} for {name}")
        for _, bound, _ in rule.bounds():
            if isinstance(bound, str) and bound not in defaults:
                raise TypeError(f"{where}: the bound of {name} names {bound!r}, "
                                "which is not one of its parameters")
    specs = {}
    for name, default in defaults.items():
        rule = rules.get(name)
        if rule is not None and name in python_only:
            rule.python_only = True
        specs[name] = ParamSpec(name, default, python_only=name in python_only, rule=rule)
    if isinstance(factory, type):
        factory._param_specs_cache = specs  # on this class only (vars() above)
    return specs


def check_params(factory, values, strict=True, block=None):
    """
    ``values`` (``{name: value}``, some of a block type's parameters)
    checked and converted by the type's rules: every value on its own, then
    the bounds that name other parameters (given or default).  Names the
    type does not take are left as they are.

    :param strict: read as from a file or request (see :class:`ParamSpec`).
    :param block: how messages name the block (the type name by default).
    :raises ParameterError: listing every refusal.
    """
    specs = param_specs(factory)
    converted, problems = dict(values), []
    for name, value in values.items():
        spec = specs.get(name)
        if spec is None or not (strict or spec.declared):
            continue
        try:
            converted[name] = spec.check(value, strict)
        except ValueError as error:
            problems.append((name, str(error)))
    refused = {name for name, _ in problems}
    problems += relation_problems(factory, {name: value for name, value in converted.items()
                                            if name not in refused}, refused)
    if problems:
        raise ParameterError(block or _type_name(factory), problems)
    return converted


def relation_problems(factory, values, refused=()):
    """
    ``[(name, message)]`` of the bounds that name another parameter and
    that ``values`` (already converted, each fine on its own) break; a
    parameter not in ``values`` counts with its default, unless it is one
    of ``refused``.  A type with rules a bound cannot say (tones against
    the reference level) gives a ``param_relations(values)`` function:
    given every value the block will have, those refused left out, it
    returns its own ``[(name, message)]``.
    """
    specs = param_specs(factory)
    problems = []
    for name, value in values.items():
        spec = specs.get(name)
        for words, bound, accepts in spec.rule.bounds() if spec else ():
            if not isinstance(bound, str) or bound in refused:
                continue
            other = values.get(bound, specs[bound].default)
            try:
                fine = accepts(value, other)
            except TypeError:
                continue  # an unset bound (a required or None default)
            if not fine:
                problems.append((name, f"{name}: must be {words} {bound} ({_shown(other)}), "
                                       f"got {_shown(value)}"))
    check = getattr(factory, "param_relations", None)
    if check is not None:
        # The type's own rules between parameters, on every value it will
        # have (a default where none is given), those refused left out.
        problems += check({name: values.get(name, spec.default)
                           for name, spec in specs.items() if name not in refused})
    return problems


def _type_name(factory):
    return getattr(factory, "type_name", None) or getattr(factory, "__name__", repr(factory))


def convert_arguments(cls, args, kwargs):
    """
    The arguments of a Python call of block class ``cls``, converted and
    checked by its rules (``size="1Ki"`` is 1024): ``(args, kwargs)``.
    Positional arguments are matched to the constructor's parameters.

    :raises ParameterError: naming the block type and each parameter refused.
    """
    specs = param_specs(cls)
    if not any(spec.declared for spec in specs.values()):
        return args, kwargs
    given, positions = {}, {}
    signature = inspect.signature(cls.__init__)
    for index, parameter in enumerate(list(signature.parameters.values())[1:]):
        if index >= len(args) or parameter.kind not in (parameter.POSITIONAL_ONLY,
                                                        parameter.POSITIONAL_OR_KEYWORD):
            break
        if parameter.name in specs:
            given[parameter.name] = args[index]
            positions[parameter.name] = index
    given.update((name, value) for name, value in kwargs.items() if name in specs)
    if not given:
        return args, kwargs
    name = kwargs.get("name")
    label = f"{_type_name(cls)} {name!r}" if isinstance(name, str) else None
    converted = check_params(cls, given, strict=False, block=label)
    args = list(args)
    for parameter, index in positions.items():
        args[index] = converted[parameter]
    kwargs = dict(kwargs, **{k: converted[k] for k in given if k not in positions})
    return tuple(args), kwargs
