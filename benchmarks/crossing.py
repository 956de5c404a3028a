"""
What a cross-process edge costs per chunk, alone: the seed's layout
(``benchmarks/transport.py`` section 3) with nothing computed.

    python benchmarks/crossing.py [--trials N] [--chunks N]

Each chain is a ``ready_iq`` source (the simulated instrument's 16 Ki-sample
IQ chunks, copied from a ready-made array into the buffer a shared-memory
stream lends) in the parent, and a ``ready_spectra`` block (the FFT ->
calibrate chain's rows of 1 024 levels, filled with one value, after
spinning ``--busy`` µs of CPU per row so that the child is as busy as the
seed's and its chunks queue up as there) in a child of its own; both
chains at once, as in the seed.  "single" runs the same blocks in one
reactor.  What the split spends beyond one reactor is the cost of the two
crossings (the IQ to the child, its spectra back): the ``x`` of ``ratio =
2(I + K) / (I + K + x)``, the seed split's speed-up on two cores when the
instruments cost ``I`` and the chains ``K`` (both saturated).

For the light chains' shapes (16 rows of spectra per chunk, 64 KiB) and the
heavy ones' (128 rows, 512 KiB), the median over ``--trials`` runs of each,
interleaved: µs of CPU per chunk in one reactor, and in the parent and in
each child when split.  The last line is the headline: the heavy chains'
crossing in µs of CPU per chunk, and the split's CPU as a ratio to one
reactor's.
"""

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.transport import CHUNK_MSA, _median, chain_rate  # noqa: E402


def per_chunk(cost):
    """µs of CPU per 16 Ki-sample chunk from CPU-seconds per MSa."""
    return cost * CHUNK_MSA * 1e6


def main():
    parser = argparse.ArgumentParser(
        description="CPU per chunk of the seed layout's crossings, nothing computed")
    parser.add_argument("--trials", type=int, default=3,
                        help="runs of each layout, interleaved; the median is reported "
                             "(default 3)")
    parser.add_argument("--chunks", type=int, default=4000,
                        help="chunks per chain in each run (default 4000)")
    parser.add_argument("--busy", type=float, default=8.0,
                        help="µs of CPU the spectra block spends per row, as the seed's "
                             "kernels do (default 8: a child as busy as the heavy chains', "
                             "its chunks queued as there); 0 for none")
    args = parser.parse_args()
    if not 0 <= args.busy <= 1000:
        parser.error("--busy must be between 0 and 1000 µs")
    if args.trials < 1 or args.chunks < 800:
        parser.error("--trials must be at least 1 and --chunks at least 800 "
                     "(the first 320 of each chain are left out as start-up)")
    runs = {}
    for _ in range(args.trials):
        for shape, overlap in (("light", 0), ("heavy", 896)):
            for mode in ("single", "split"):
                runs.setdefault((shape, mode), []).append(
                    chain_rate(mode, args.chunks, overlap, chain=f"bare:{args.busy * 1e-6}"))
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"the seed's layout with nothing computed (ready-made IQ in the parent, ready-made "
          f"spectra in a child per chain, {args.busy:g} µs of CPU spent per row), median of "
          f"the trials, µs of CPU per chunk:")
    for shape, rows in (("light", 16), ("heavy", 128)):
        single = _median(runs[(shape, "single")])
        split = _median(runs[(shape, "split")])
        one, total = per_chunk(single[1]), per_chunk(split[1])
        # The parent's CPU per chunk of either chain; each child's per chunk
        # of its own (it has half of them).
        parent, *children = (per_chunk(x) for x in split[3:])
        each = ", ".join(f"{2 * x:.0f}" for x in children)
        print(f"  {shape} ({rows} rows of spectra): one reactor {one:.0f}; split {total:.0f} "
              f"(parent {parent:.0f}, each child {each} per chunk of its own); "
              f"crossing {total - one:.0f}; throughput {split[0] / single[0]:.2f} x one reactor")
    # (the last shape of the loop: the heavy chains')
    print(f"crossing of the heavy chains: {total - one:.0f} µs of CPU per chunk beyond one "
          f"reactor's {one:.0f} (parent {parent:.0f}, each child {each}), the split's CPU "
          f"{total / one:.2f} x one reactor's")


if __name__ == "__main__":
    main()
