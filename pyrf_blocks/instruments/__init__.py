"""
Instrument sources.  ``WSA4000(host)``, ``WSA5000(host)`` and
``R5500(host)`` reach a ThinkRF analyzer over the network (SCPI on TCP
37001, VITA-49 on TCP 37000; other ports for the emulator or tunnels);
``host="sim"`` gives the built-in simulated instrument.
"""

from ..blocks.sources import simulated_instrument
from .wsa import thinkrf_analyzer

__all__ = ["WSA4000", "WSA5000", "R5500", "analyzer", "tuning_limits", "SIMULATED_HOSTS",
           "thinkrf_analyzer"]

#: Host names that select the simulated instrument.
SIMULATED_HOSTS = ("sim", "simulated")


def analyzer(model, host, **settings):
    """
    A source for an analyzer of family ``model`` at ``host`` (``"sim"``:
    the simulated instrument).
    """
    if host in SIMULATED_HOSTS:
        return simulated_instrument(model=model, **settings)
    return thinkrf_analyzer(host, model=model, **settings)


def tuning_limits(model, host):
    """
    What the source :func:`analyzer` makes for ``model`` at ``host`` (or,
    ``host=None``, an analyzer of that family on the network) accepts: its
    name in words, and ``{"center_frequency": (lowest, highest),
    "sample_rate": (lowest, highest)}`` in Hz, the limits its own checks
    use.
    """
    from ..params import param_specs
    from .models import model_of

    if host in SIMULATED_HOSTS:
        specs = param_specs(simulated_instrument)
        limits = {}
        for name in ("center_frequency", "sample_rate"):
            rule = specs[name].rule
            limits[name] = (rule.minimum if rule.minimum is not None else rule.above,
                            rule.maximum)
        return "the simulated instrument", limits
    family = model_of(model)
    rates = [family.full_rate / factor for factor in family.decimations]
    limits = {"center_frequency": family.frequency_range,
              "sample_rate": (min(rates), max(rates))}
    article = "an" if family.name[0] in "AEFHILMNORSX" else "a"  # (as the letter sounds)
    return f"{article} {family.name}", limits


def WSA4000(host="sim", **settings):
    """
    An IQ source for a ThinkRF WSA4000 at ``host``
    (:class:`~pyrf_blocks.instruments.wsa.thinkrf_analyzer`; keyword
    settings such as ``center_frequency``, ``decimation``, ``scpi_port``
    and ``data_port`` are passed to it).  ``host="sim"`` gives
    :class:`~pyrf_blocks.blocks.sources.simulated_instrument` instead.
    """
    return analyzer("WSA4000", host, **settings)


def WSA5000(host="sim", **settings):
    """
    An IQ source for a ThinkRF WSA5000 at ``host`` (see :func:`WSA4000`).
    """
    return analyzer("WSA5000", host, **settings)


def R5500(host="sim", **settings):
    """
    An IQ source for a ThinkRF R5500 at ``host`` (see :func:`WSA4000`).
    """
    return analyzer("R5500", host, **settings)
