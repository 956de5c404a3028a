"""
Measurement blocks: THD and instantaneous power.
"""

import numpy as np
from zope.interface import implementer

from ..registry import register
from ..block import Block
from ..interfaces import IRealProducer, ISampleProducer, IScalarProducer
from ..numerics.thd import thd
from ..params import Param

__all__ = ["thd_block", "power_block"]


@register
@implementer(IScalarProducer)
class thd_block(Block):
    """
    THD (percent) of every ``size`` consecutive samples, over harmonics
    2..``harmonics``, from real or IQ samples.  One value per window, stamped
    with the window's time range, whatever the input chunking.

    :param harmonics: highest harmonic order included.
    :param size: samples per measurement window.
    """

    type_name = "thd_block"
    kind = "scalar"
    requires = (ISampleProducer,)
    param_rules = {"size": Param("count", minimum=64, maximum=1 << 24),
                   "harmonics": Param("count", minimum=2, maximum=1000)}

    def __init__(self, producer, harmonics=5, size=65536, **kwargs):
        self.size = size
        self.harmonics = harmonics
        super().__init__(producer, **kwargs)

    def reset(self):
        self._pieces = []
        self._filled = 0
        self._start = None

    def compute(self, chunk):
        offset = 0
        values, starts, end = [], [], None
        while offset < len(chunk.data):
            if self._start is None:
                self._start = chunk.time_of(offset)
            take = min(self.size - self._filled, len(chunk.data) - offset)
            self._pieces.append(chunk.data[offset:offset + take])
            self._filled += take
            offset += take
            if self._filled == self.size:
                window = (self._pieces[0] if len(self._pieces) == 1
                          else np.concatenate(self._pieces))
                values.append(thd(window, self.harmonics))
                starts.append(self._start)
                end = chunk.time_of(offset) if offset < len(chunk.data) else chunk.end
                self._pieces, self._filled, self._start = [], 0, None
        if values:
            self.emit(np.array(values), starts[0], end, chunk.rate / self.size,
                      {"units": "%", "quantity": "thd", "harmonics": self.harmonics})


@register
@implementer(IRealProducer)
class power_block(Block):
    """
    Instantaneous power ``v·i`` (W) from a voltage (V) and a current (A)
    stream, synchronised sample by sample.
    """

    type_name = "power_block"
    kind = "real"
    requires = (IRealProducer, IRealProducer)

    def compute(self, voltage, current):
        if len(voltage.data) != len(current.data):
            raise ValueError(f"{self.type_name} {self.name!r}: voltage and current "
                             f"rates differ ({voltage.rate} and {current.rate} Hz)")
        self.emit(np.multiply(voltage.data, current.data), voltage.start, voltage.end,
                  voltage.rate, {"units": "W", "quantity": "power"})
