"""
Measurement blocks: THD and instantaneous power (a pointwise KPI, see
:mod:`pyrf_blocks.blocks.kpi`).
"""

import numpy as np
from zope.interface import implementer

from ..registry import register
from ..block import Block
from ..interfaces import IChunkProducer, ISampleProducer, IScalarProducer, IStateful
from ..numerics.formula import Formula
from ..numerics.thd import thd
from ..params import Param
from ..state import check_version, pack_array, unpack_array
from .kpi import pointwise_block

__all__ = ["thd_block", "power_block"]


@register
@implementer(IScalarProducer, IStateful)
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

    # IStateful: the samples of the window being filled.

    def get_state(self):
        pending = (None if not self._pieces else self._pieces[0] if len(self._pieces) == 1
                   else np.concatenate(self._pieces))
        return {"version": 1, "pending": pack_array(pending), "start": self._start}

    def set_state(self, state):
        check_version(self, state, 1)
        pending = unpack_array(state["pending"])
        self._pieces = [] if pending is None else [pending]
        self._filled = 0 if pending is None else len(pending)
        self._start = state["start"]

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
class power_block(pointwise_block):
    """
    Instantaneous power ``v·i`` (W) from a voltage (V) and a current (A)
    stream, synchronised row by row: sampled streams of one rate (``real``
    or ``scalar``), or records at the same times (see
    :mod:`pyrf_blocks.blocks.kpi`).
    """

    type_name = "power_block"
    requires = (IChunkProducer, IChunkProducer)
    variadic = False

    def __init__(self, *inputs, **kwargs):
        # power_block(voltage, current)
        self.input_names = ("voltage", "current")
        self.formula = Formula("voltage * current", self.input_names)
        self.meta = {"units": "W", "quantity": "power"}
        super().__init__(*inputs, **kwargs)
