"""
The ThinkRF analyzer families: what differs between them for a source and
for the emulator.  Ports and the discovery port are the same for all.
"""

__all__ = ["Model", "MODELS", "model_of", "SCPI_PORT", "DATA_PORT", "DISCOVERY_PORT"]

#: TCP port of the SCPI control connection.
SCPI_PORT = 37001
#: TCP port of the VRT data stream.
DATA_PORT = 37000
#: UDP port answering discovery broadcasts.
DISCOVERY_PORT = 18331


class Model:
    """
    One analyzer family.

    :param name: family name, as the first part of ``*IDN?``'s model field.
    :param full_rate: IQ sample rate without decimation, Sa/s.
    :param decimations: decimation factors accepted (1 = none).
    :param spp_range: ``(lowest, highest, multiple)`` samples per packet.
    :param frequency_range: ``(lowest, highest)`` centre frequency, Hz.
    """

    def __init__(self, name, full_rate, decimations, spp_range, frequency_range):
        self.name = name
        self.full_rate = full_rate
        self.decimations = decimations
        self.spp_range = spp_range
        self.frequency_range = frequency_range

    def __repr__(self):
        return f"<Model {self.name}>"

    def check(self, center_frequency=None, decimation=None, samples_per_packet=None):
        """
        Raise ``ValueError`` naming the setting and the accepted range if a
        value is out of this family's range.
        """
        if center_frequency is not None:
            low, high = self.frequency_range
            if not low <= center_frequency <= high:
                raise ValueError(f"{self.name}: centre frequency {center_frequency:g} Hz "
                                 f"is outside {low:g}..{high:g} Hz")
        if decimation is not None and decimation not in self.decimations:
            raise ValueError(f"{self.name}: decimation {decimation!r} is not supported; "
                             f"use {self.describe_decimations()}")
        if samples_per_packet is not None:
            low, high, multiple = self.spp_range
            if not (low <= samples_per_packet <= high and samples_per_packet % multiple == 0):
                raise ValueError(f"{self.name}: samples per packet {samples_per_packet!r} "
                                 f"must be a multiple of {multiple} in {low}..{high}")


    def describe_decimations(self):
        """
        The decimations accepted, in words: ``"1 (none) or a power of two
        from 4 to 1024"``.
        """
        factors = self.decimations[1:]
        low, high = min(factors), max(factors)
        if all(factor & (factor - 1) == 0 for factor in factors):
            return f"1 (none) or a power of two from {low} to {high}"
        return f"1 (none) or a whole number from {low} to {high}"


def _decimations(highest):
    return (1,) + tuple(2 ** n for n in range(2, highest.bit_length()))


MODELS = {
    "WSA4000": Model("WSA4000", 125e6, (1,) + tuple(range(4, 1024)),
                     (128, 32768, 16), (0.0, 10e9)),
    "WSA5000": Model("WSA5000", 125e6, _decimations(1024),
                     (128, 65520, 16), (50e6, 27e9)),
    "R5500": Model("R5500", 125e6, _decimations(1024),
                   (128, 65520, 16), (9e3, 27e9)),
}


def model_of(name):
    """
    The :class:`Model` called ``name`` (case-insensitive); ``ValueError``
    listing the known ones otherwise.
    """
    for key, model in MODELS.items():
        if str(name).upper().startswith(key):
            return model
    raise ValueError(f"unknown analyzer model {name!r}; known: {', '.join(MODELS)}")
