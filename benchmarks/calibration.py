"""
Calibration of float32 power to dBm: the compiled kernel
(:func:`pyrf_blocks.numerics.kernels.dbm_into`, numba's kernels) against
numpy's steps measured in the same run.

    python benchmarks/calibration.py [--trials N] [--seconds S]

numpy's steps are what calibration does without numba's kernels:
``np.log10(power, out=out)`` (float32: the C library's ``log10f``, once
per element), ``out *= 10``, ``out += offset`` and ``out[:, 1:512] +=
doubled`` (a real input's one-sided spectrum).  Both calibrate the same
powers (noise at levels from -120 to +50 dB) into an array of their own
(the kernel also in place, as a fused calibration calls it, after copying
the powers in), for a (64, 1024) batch (the spectra of 64 Ki samples) and a (1, 1024)
row (a held row), each call timed in a loop of about ``--seconds``; the
figure is the median over ``--trials`` loops of nanoseconds per element,
with the spread (least to most), one core, wall time (run it alone:
``flock -x``).  The results are checked first: the kernel's levels are
within 1 float32 step of the float64 level rounded to float32.  The last
line is the headline: the (64, 1024) batch's ns per element and its ratio
to numpy's steps.
"""

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pyrf_blocks.numerics import kernels  # noqa: E402

OFFSET = np.float32(-57.25)
DOUBLED = np.float32(6.0206)
FIRST, LAST = 1, 512


def powers(rows):
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((rows, 1024), dtype=np.float32) ** 2
    return noise * np.float32(10.0) ** rng.integers(-12, 6, (rows, 1024)).astype(np.float32)


def numpy_steps(power, out):
    np.log10(power, out=out)
    out *= np.float32(10.0)
    out += OFFSET
    out[:, FIRST:LAST] += DOUBLED


def compiled(power, out):
    kernels.dbm_into(power, out, OFFSET, DOUBLED, FIRST, LAST)


def compiled_in_place(power, out):
    # (as every fused calibration calls it: the powers' array is the
    # levels'; the powers copied in first, which the figure includes)
    np.copyto(out, power)
    kernels.dbm_into(out, out, OFFSET, DOUBLED, FIRST, LAST)


def check(power):
    """The kernel's levels are within 1 float32 step of the float64 ones."""
    out = np.empty_like(power)
    compiled(power, out)
    truth = 10 * np.log10(power.astype(np.float64)) + np.float64(OFFSET)
    truth[:, FIRST:LAST] += np.float64(DOUBLED)
    steps = np.abs(out.view(np.int32).astype(np.int64)
                   - truth.astype(np.float32).view(np.int32).astype(np.int64))
    if steps.max() > 1:
        raise SystemExit(f"the kernel is {steps.max()} float32 steps off the float64 level")


def calls_in(function, power, seconds):
    """How many calls of ``function`` take about ``seconds``."""
    out = np.empty_like(power)
    function(power, out)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds / 4:
        function(power, out)
        calls += 1
    return calls * 4


def ns_per_element(function, power, calls):
    out = np.empty_like(power)
    start = time.perf_counter()
    for _ in range(calls):
        function(power, out)
    return (time.perf_counter() - start) / calls / power.size * 1e9


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=7, help="timed loops of each (default 7)")
    parser.add_argument("--seconds", type=float, default=0.5,
                        help="seconds of each timed loop (default 0.5)")
    args = parser.parse_args()
    kernels.set_backend("numba")  # (an error where numba is missing)
    results = {}
    for rows in (64, 1):
        power = powers(rows)
        check(power)
        # The two interleaved, trial by trial, so that a change of the
        # machine's speed strikes both.
        functions = {"numpy": numpy_steps, "compiled": compiled,
                     "in_place": compiled_in_place}
        calls = {name: calls_in(function, power, args.seconds)
                 for name, function in functions.items()}
        timings = {name: [] for name in functions}
        for _ in range(args.trials):
            for name, function in functions.items():
                timings[name].append(ns_per_element(function, power, calls[name]))
        results[rows] = {name: (statistics.median(values), min(values), max(values))
                         for name, values in timings.items()}
    print(f"load average at the end: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
          f"ns per element, median [least-most] of {args.trials} trials")
    for rows in (1, 64):
        plain, fast = results[rows]["numpy"], results[rows]["compiled"]
        print(f"  ({rows}, 1024): numpy's steps {plain[0]:.2f} [{plain[1]:.2f}-{plain[2]:.2f}], "
              f"dbm_into {fast[0]:.2f} [{fast[1]:.2f}-{fast[2]:.2f}], "
              f"ratio {plain[0] / fast[0]:.2f}x; in place, after a copy of the powers "
              f"{results[rows]['in_place'][0]:.2f}")
    plain, fast = results[64]["numpy"], results[64]["compiled"]
    print(f"headline: dbm_into on (64, 1024) float32 powers {fast[0]:.2f} ns per element, "
          f"{plain[0] / fast[0]:.2f}x numpy's log10, *=, += steps ({plain[0]:.2f} ns)")


if __name__ == "__main__":
    main()
