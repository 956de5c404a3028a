"""
The units of pipeline files: :mod:`pyrf_blocks.units`, under the name it
had before blocks checked their parameters with it (outside this package,
so that making a block does not load the pipeline parser).
"""

from ..units import UNITS, UnitError, accepted_suffixes, format_quantity, parse_quantity

__all__ = ["UNITS", "parse_quantity", "format_quantity", "accepted_suffixes"]
