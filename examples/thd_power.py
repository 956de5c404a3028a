"""
One signal feeding several computations (the DPS seed's "Va for power and
THD"): a mains voltage and current, their instantaneous power, and the THD of
the voltage, from arrays played by the testing source.

    python examples/thd_power.py
"""

import numpy as np

from pyrf_blocks import Graph, collector, power_block, thd_block
from pyrf_blocks.numerics.signals import tone_samples
from pyrf_blocks.testing import array_source

RATE, MAINS, COUNT = 25_600.0, 50.0, 4 * 16_384


def harmonic(order, amplitude, phase=0.0):
    return tone_samples(0, COUNT, RATE, order * MAINS, amplitude, phase, complex_output=False)


voltage = harmonic(1, 325.0) + harmonic(3, 0.03 * 325.0) + harmonic(5, 0.04 * 325.0, 1.0)
current = harmonic(1, 10.0, -0.2)

graph = Graph()
va = array_source(np.array_split(voltage, 37), kind="real", rate=RATE, graph=graph,
                  meta={"units": "V"})
ia = array_source(np.array_split(current, 23), kind="real", rate=RATE, graph=graph,
                  meta={"units": "A"})
thd = collector(thd_block(va, size=16_384))
power = collector(power_block(va, ia))
graph.run()

print(f"THD of the voltage: {', '.join(f'{v:.3f} %' for v in thd.data())}")
print(f"mean power: {power.data().mean():.1f} W "
      f"(expected {325.0 * 10.0 / 2 * np.cos(0.2):.1f} W)")
