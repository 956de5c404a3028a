"""
A block for benchmarks/cluster.py: passes IQ through and keeps a state of a
chosen size that every chunk changes, so that recovery must move it.

Workers load it with ``pyrf-blocks worker --import cluster_blocks`` (with
this directory on PYTHONPATH).
"""

import numpy as np
from zope.interface import implementer

from pyrf_blocks.block import Block
from pyrf_blocks.interfaces import IIQProducer, IStateful
from pyrf_blocks.registry import register
from pyrf_blocks.state import pack_array, unpack_array


@register
@implementer(IIQProducer, IStateful)
class ballast(Block):
    """IQ in, IQ out; ``state_bytes`` of state, one element bumped per chunk."""

    type_name = "ballast"
    requires = (IIQProducer,)
    kind = "iq"

    def __init__(self, producer, state_bytes=1024, **kwargs):
        self.state_bytes = int(state_bytes)
        super().__init__(producer, **kwargs)

    def reset(self):
        self._state = np.zeros(max(1, self.state_bytes // 8), np.float64)
        self._chunks = 0

    def get_state(self):
        return {"state": pack_array(self._state), "chunks": self._chunks}

    def set_state(self, state):
        self._state, self._chunks = unpack_array(state["state"]), state["chunks"]

    def compute(self, chunk):
        self._state[self._chunks % len(self._state)] += float(np.abs(chunk.data[0]))
        self._chunks += 1
        self.emit(chunk.data, chunk.start, chunk.end, chunk.rate, chunk.meta)
