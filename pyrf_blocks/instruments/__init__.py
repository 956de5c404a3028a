"""
Instrument sources.  ``WSA4000(host)`` is the seed's source: ``"sim"``
gives the built-in simulated instrument.
"""

from ..blocks.sources import simulated_instrument

__all__ = ["WSA4000", "SIMULATED_HOSTS"]

#: Host names that select the simulated instrument.
SIMULATED_HOSTS = ("sim", "simulated")


def WSA4000(host="sim", **settings):
    """
    An IQ source for a ThinkRF WSA4000 at ``host``.

    ``host="sim"`` gives :class:`simulated_instrument` (keyword settings
    are passed to it).
    """
    if host in SIMULATED_HOSTS:
        return simulated_instrument(model="WSA4000", **settings)
    raise ValueError(f"WSA4000: cannot reach {host!r}: only the simulated "
                     f"instrument ({' or '.join(SIMULATED_HOSTS)}) is available "
                     "in this version")
