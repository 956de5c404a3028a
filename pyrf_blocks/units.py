"""
Quantities with units, as pipeline files write them: ``10s``, ``5m``,
``2.4GHz``, ``-20dBm``, ``1Ki``.

:func:`parse_quantity` is the one parser; :data:`UNITS` lists what each unit
accepts.  Every value comes back in the unit's base: seconds, hertz, dB or
dBm, a plain count, or integer nanoseconds of device time.  A bare number is
already in the base unit.
"""

import math
import re
from fractions import Fraction

from .errors import UnitError
from .messages import shown

__all__ = ["UNITS", "parse_quantity", "format_quantity",
           "accepted_suffixes"]


class _Unit:
    """
    One unit: its name, what it measures, and its suffixes with their scale.
    """

    def __init__(self, name, what, suffixes, integer=False):
        self.name = name
        self.what = what
        self.suffixes = suffixes
        self.integer = integer


_DURATION = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0,
             "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}

#: The units a parameter may declare (``param_units`` on a block class).
UNITS = {unit.name: unit for unit in (
    _Unit("Hz", "a frequency",
          {"Hz": 1.0, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9,
           "Sa/s": 1.0, "kSa/s": 1e3, "MSa/s": 1e6, "GSa/s": 1e9}),
    _Unit("s", "a duration", _DURATION),
    _Unit("ns", "a device time",
          {"ns": 1, "us": 10 ** 3, "µs": 10 ** 3, "ms": 10 ** 6, "s": 10 ** 9,
           "m": 60 * 10 ** 9, "min": 60 * 10 ** 9, "h": 3600 * 10 ** 9,
           "d": 86400 * 10 ** 9}, integer=True),
    _Unit("dB", "a level ratio", {"dB": 1.0}),
    _Unit("dBc", "a level relative to the carrier", {"dBc": 1.0}),
    _Unit("dBm", "a power level", {"dBm": 1.0}),
    _Unit("dBm/Hz", "a noise density", {"dBm/Hz": 1.0}),
    _Unit("count", "a count",
          {"": 1, "k": 1000, "M": 1000 ** 2, "G": 1000 ** 3,
           "Ki": 1024, "Mi": 1024 ** 2, "Gi": 1024 ** 3}, integer=True),
)}

_NUMBER = re.compile(r"\s*([-+]?(?:\d[\d_]*\.?\d*|\.\d+)(?:[eE]([-+]?\d+))?)\s*(\S*)\s*$")
_LONGEST = 40
_LARGEST_EXPONENT = 400


def accepted_suffixes(unit):
    """
    The suffixes ``unit`` accepts, as text for messages and documentation.
    """
    names = [name for name in UNITS[unit].suffixes if name]
    return ", ".join(names) if names else "none"


def _reject(field, value, unit):
    spec = UNITS[unit]
    kind = "a whole number" if spec.integer else "a number"
    return UnitError(f"{field}: {shown(value)} is not {spec.what}; write {kind}, "
                     f"optionally followed by one of: {accepted_suffixes(unit)}")


def parse_quantity(value, unit, field="value"):
    """
    ``value`` (a number, or text such as ``"2.4GHz"``) in the base of ``unit``.

    :param unit: a key of :data:`UNITS`.
    :param field: the name messages give the value (``"fft.size"``).
    :return: ``float``, or ``int`` for ``count`` and ``ns``.
    :raises UnitError: naming ``field`` and the accepted suffixes.
    """
    spec = UNITS[unit]
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise _reject(field, value, unit)
    if isinstance(value, str):
        # No quantity needs more; a longer text is refused before any
        # arithmetic (1e999999999 as an exact count would never finish).
        match = _NUMBER.match(value) if len(value) <= _LONGEST else None
        if match and abs(int(match.group(2) or 0)) > _LARGEST_EXPONENT:
            match = None
        if match is None or (match.group(3) and match.group(3) not in spec.suffixes):
            raise _reject(field, value, unit)
        number_text, _, suffix = match.groups()
        number_text = number_text.replace("_", "")
        scale = spec.suffixes.get(suffix, 1)
        if spec.integer:
            # Exact arithmetic: 1.014852M is 1014852, not 1014851.9999999999.
            number = Fraction(number_text)
        else:
            number = float(number_text)
    else:
        number, scale = value, 1
    if isinstance(number, float) and not math.isfinite(number):
        raise _reject(field, value, unit)
    if spec.integer:
        exact = Fraction(number) * scale
        if exact.denominator != 1:
            raise UnitError(f"{field}: {shown(value)} is not a whole number of "
                            f"{'samples' if unit == 'count' else 'nanoseconds'}")
        return int(exact)
    try:
        result = float(number) * scale
    except OverflowError:  # an integer beyond any float
        raise _reject(field, value, unit) from None
    if not math.isfinite(result):
        raise _reject(field, value, unit)
    return result


def format_quantity(value, unit):
    """
    ``value`` (in the base of ``unit``) as the shortest text that
    :func:`parse_quantity` reads back to exactly the same number; the
    number itself where no suffix does.
    """
    spec = UNITS[unit]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    plain = value if spec.integer else float(value)
    choices = []
    for suffix, scale in spec.suffixes.items():
        if suffix in ("µs", "min") or "Sa/s" in suffix:
            continue
        scaled = value / scale
        # Engineering style: 2.4GHz, 500ms, 1Ki; never 0.008k or 300000000ns.
        if value and not 1 <= abs(scaled) < 1000:
            continue
        text = f"{scaled:.15g}{suffix}"
        try:
            if parse_quantity(text, unit) == value:
                choices.append(text)
        except UnitError:
            continue
    if not choices:
        return plain
    best = min(choices, key=len)
    return plain if best.lstrip("-").isdigit() else best
