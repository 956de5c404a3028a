"""
Efficiency of a power converter (docs/howto/power_converter_efficiency.rst):
V_in, I_in, V_out, I_out → P_in, P_out (the mean power of every 50 Hz
cycle) → efficiency → its maximum over 4 s, the input current's THD at 50 %
load and the CEC-weighted efficiency.  The live run records the four
channels; the same graph replayed over the recording gives the same bits.

    python examples/power_converter.py [--directory DIR]

The converter is simulated: 1 kW rated, swept through 10, 20, 40, 50, 75
and 100 % load for 2 s each, with an efficiency of 88, 92, 94.5, 95, 95.5
and 95 % there.  The sweep misses the CEC point at 30 %: the weighted
efficiency is reported as missing it, never computed over fewer points.
"""

import argparse
import os
import tempfile

import numpy as np

from pyrf_blocks import (Graph, collector, cycle_rms, efficiency_block, moving_max,
                         power_block, record_channels, sigmf_source, thd_at_load, thd_block,
                         waveform_source, weighted_efficiency)

RATED = 1000.0                                   # W
LOADS = [0.1, 0.2, 0.4, 0.5, 0.75, 1.0]          # of RATED, 2 s each
EFFICIENCY = [0.88, 0.92, 0.945, 0.95, 0.955, 0.95]
COMMON = dict(sample_rate=5e3, samples_per_chunk=500, count=120, paced=False,
              start_time=1_774_742_400_000_000_000)


def simulated(graph):
    """The converter's four probes: waveform sources named V_in, I_in, V_out, I_out."""
    i_steps = [load / eta for load, eta in zip(LOADS, EFFICIENCY)]
    return [
        waveform_source(amplitude=325, noise=0.5, units="V", graph=graph, name="V_in",
                        **COMMON),
        waveform_source(amplitude=2 * RATED / 325, harmonics=[(3, 0.08), (5, 0.05)],
                        noise=0.01, seed=1, steps=i_steps, step_duration=2.0, units="A",
                        graph=graph, name="I_in", **COMMON),
        waveform_source(frequency=100, amplitude=0.5, offset=48, noise=0.05, seed=2,
                        units="V", graph=graph, name="V_out", **COMMON),
        waveform_source(frequency=100, amplitude=0, offset=RATED / 48, noise=0.01, seed=3,
                        steps=LOADS, step_duration=2.0, units="A", graph=graph,
                        name="I_out", **COMMON),
    ]


def converter(v_in, i_in, v_out, i_out):
    """The measurements, each into a collector: {name: collector}."""
    p_in = cycle_rms(power_block(v_in, i_in), 50, statistic="mean")     # W per cycle
    p_out = cycle_rms(power_block(v_out, i_out), 50, statistic="mean")
    efficiency = efficiency_block(p_out, p_in)                          # % per cycle
    return {
        "efficiency": collector(efficiency),
        "best": collector(moving_max(efficiency, over="4s")),
        "thd_at_50": collector(thd_at_load(thd_block(i_in, size=1000), p_out, loads=[50],
                                           rated=RATED)),
        "cec": collector(weighted_efficiency(efficiency, p_out, weights="cec",
                                             rated=RATED)),
    }


def times(sink):
    """The device times of every row a collector took."""
    return np.concatenate([chunk.times for chunk in sink.chunks])


def main(directory):
    recording = os.path.join(directory, "converter")
    live = Graph()
    sources = simulated(live)
    record_channels(*sources, path=recording)         # channels named after the sources
    measured = converter(*sources)
    live.run()

    history = Graph()
    replayed = converter(*(sigmf_source(recording, channel=name, graph=history)
                           for name in ("V_in", "I_in", "V_out", "I_out")))
    history.run()

    print(f"{len(measured['efficiency'].data())} cycles, efficiency "
          f"{measured['efficiency'].data().min():.1f} .. "
          f"{measured['efficiency'].data().max():.1f} %; best over 4 s at the end: "
          f"{measured['best'].data()[-1]:.2f} %")
    thd = measured["thd_at_50"].data()[0]
    print(f"THD of I_in at {thd['load']:.0f} % load: {thd['thd']:.2f} % "
          f"({thd['count']} values)")
    cec = measured["cec"].chunks[0]
    bins = cec.meta["bins"]
    for load, eta, count in zip(bins["load"], bins["efficiency"], bins["count"]):
        print(f"  {load:5.0f} % load: {eta:6.2f} % efficiency ({count} cycles)")
    print(f"CEC-weighted efficiency: {cec.data[0]['efficiency']:.2f} %, "
          f"{cec.data[0]['missing']} point(s) missing: {cec.meta['missing']} %")
    same = all(np.array_equal(times(measured[n]), times(replayed[n]))
               and measured[n].data().tobytes() == replayed[n].data().tobytes()
               for n in measured)
    print(f"history = live: {same}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--directory", help="where to write the recording "
                        "(default: a temporary directory, removed after)")
    args = parser.parse_args()
    if args.directory:
        main(args.directory)
    else:
        with tempfile.TemporaryDirectory() as directory:
            main(directory)
