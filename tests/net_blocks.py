"""
A block with two outputs, for the tests of named outputs across processes.

Importing the module registers it, so that a child worker started with
``process(imports=["net_blocks"])`` can create it; the tests of this
process register it for one test at a time (``net_support.tee_power``).
"""

import numpy as np

from pyrf_blocks.block import Block
from pyrf_blocks.interfaces import IIQProducer
from pyrf_blocks.registry import register


@register
class tee_power(Block):
    """
    Passes IQ chunks through on its main output and, on ``power``, the
    mean power of every two chunks as one real sample spanning both.
    """

    type_name = "tee_power"
    kind = "iq"
    extra_outputs = {"power": "real"}
    requires = (IIQProducer,)

    def reset(self):
        self._held = None

    def compute(self, chunk):
        self.emit(chunk.data, chunk.start, chunk.end, chunk.rate, chunk.meta)
        if self._held is None:
            self._held = chunk
            return
        first, self._held = self._held, None
        samples = np.concatenate([first.data, chunk.data])
        power = np.mean(np.abs(samples) ** 2, dtype=np.float64)
        self.emit(np.array([power], np.float32), first.start, chunk.end,
                  1e9 / (chunk.end - first.start), chunk.meta, output="power")
