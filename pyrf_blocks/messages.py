"""
How a message shows a value that a caller gave: a parameter, a field of a
pipeline file, a quantity with its unit.  It imports nothing of the
package, so that making a block (whose parameters are checked with it)
never loads the pipeline parser.
"""

import reprlib

__all__ = ["shown"]

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 60
_REPR.maxlevel = 2
_REPR.maxlist = _REPR.maxdict = 4
_SHOWN = 80


def shown(value):
    """
    ``repr(value)`` cut short, for messages: a value written in a file may
    be huge (an alias repeated), and a message must stay one readable line.
    """
    text = _REPR.repr(value)
    return text if len(text) <= _SHOWN else text[:_SHOWN - 3] + "..."
