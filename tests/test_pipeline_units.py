"""
Units in pipeline files: one parser for every quantity, and a formatter that
reads back exactly.
"""

import math

import pytest
from hypothesis import given, strategies as st

from pyrf_blocks.pipeline.units import UNITS, UnitError, format_quantity, parse_quantity


@pytest.mark.parametrize("text, unit, expected", [
    ("10s", "s", 10.0),
    ("5m", "s", 300.0),
    ("250ms", "s", 0.25),
    ("1.5h", "s", 5400.0),
    ("2.4GHz", "Hz", 2.4e9),
    ("7.8125MSa/s", "Hz", 7.8125e6),
    ("-2.5MHz", "Hz", -2.5e6),
    ("1e6", "Hz", 1e6),
    ("-20dBm", "dBm", -20.0),
    ("-150dBm/Hz", "dBm/Hz", -150.0),
    ("-40dBc", "dBc", -40.0),
    ("1Ki", "count", 1024),
    ("16Ki", "count", 16384),
    ("1_000", "count", 1000),
    ("2k", "count", 2000),
    ("1.5s", "ns", 1_500_000_000),
    (2.4e9, "Hz", 2.4e9),
    (7, "count", 7),
])
def test_parses_quantities(text, unit, expected):
    """Each written quantity is read in the base of its unit."""
    value = parse_quantity(text, unit, "field")
    assert value == expected
    assert type(value) is (int if UNITS[unit].integer else float)


def test_bad_unit_names_field_and_accepted_units():
    """A wrong suffix is refused with the field name and every accepted suffix."""
    with pytest.raises(UnitError) as caught:
        parse_quantity("2.4Ghz", "Hz", "wsa.center_frequency")
    message = str(caught.value)
    assert message.startswith("wsa.center_frequency: '2.4Ghz' is not a frequency")
    for suffix in ("Hz", "kHz", "MHz", "GHz"):
        assert suffix in message


@pytest.mark.parametrize("value, unit", [
    ("10 parsecs", "s"), ("GHz", "Hz"), ("", "s"), (True, "count"), (None, "Hz"),
    ([1], "Hz"), ("1.5", "count"), ("1.0001k", "count"),
    (math.inf, "Hz"), ("nan", "Hz"), ("-20 dBm", "dB"), ("1e308GHz", "Hz"),
    ("1e999999999", "count"), ("1" * 5000, "count"), ("1e-999999999s", "ns"),
])
def test_rejects_what_is_not_a_quantity(value, unit):
    """Text, booleans, fractions of a count, non-finite and absurdly long values are refused."""
    with pytest.raises(UnitError, match="^f: "):
        parse_quantity(value, unit, "f")


def test_formats_in_engineering_style():
    """Values are written with the suffix an engineer would use."""
    assert format_quantity(2.4e9, "Hz") == "2.4GHz"
    assert format_quantity(7.8125e6, "Hz") == "7.8125MHz"
    assert format_quantity(0.25, "s") == "250ms"
    assert format_quantity(600.0, "s") == "10m"
    assert format_quantity(1024, "count") == "1Ki"
    assert format_quantity(8, "count") == 8
    assert format_quantity(-20.0, "dBm") == "-20dBm"
    assert format_quantity(1 / 3, "Hz") == 1 / 3


@given(st.floats(allow_nan=False, allow_infinity=False, min_value=-1e12, max_value=1e12),
       st.sampled_from(["Hz", "s", "dB", "dBm", "dBm/Hz"]))
def test_formatted_floats_read_back_exactly(value, unit):
    """Whatever the float, formatting then parsing gives exactly the same number."""
    assert parse_quantity(format_quantity(value, unit), unit) == value


@given(st.integers(min_value=-2**62, max_value=2**62), st.sampled_from(["count", "ns"]))
def test_formatted_integers_read_back_exactly(value, unit):
    """Counts and device times survive formatting exactly, as integers."""
    back = parse_quantity(format_quantity(value, unit), unit)
    assert back == value and type(back) is int
