"""
The spectrum chain in one reactor against a bare scipy loop and GNU Radio
3.10, side by side in one run.

    python benchmarks/spectrum_vs_gnuradio.py [--seconds S] [--trials N]

Chain: IQ (64 Ki-sample chunks) -> Hann -> FFT-1024 -> |X|² -> dB -> max
hold.

- ``ours``: the blocks (``fft_block``, ``calibrate_block``, ``max_hold``)
  in one reactor, the graph optimised (:mod:`pyrf_blocks.optimise`), FFTW
  when pyFFTW is installed, numba's compiled window multiply and ``|X|²``
  when numba is installed (:mod:`pyrf_blocks.numerics.kernels`).
- ``ours, pocketfft``: the same with ``PYRF_BLOCKS_FFT=pocketfft``.
- ``ours, numpy kernels``: the same with ``PYRF_BLOCKS_KERNELS=numpy``
  (what ``ours`` is without numba); left out where numba is missing, as
  ``ours`` is then the same.
- ``bare scipy``: a tuned loop with no framework: preallocated buffers,
  in place, the fftshift folded into the window, scipy's pocketfft.
- ``GNU Radio``: stream_to_vector -> fft_vcc (Hann, shift) ->
  complex_to_mag_squared -> nlog10_ff -> a null sink, from a repeating
  vector source, with default buffers and with large ones (8 MiB per
  output buffer; GNU Radio has
  no max-hold block; the hold, a fraction of the work, is left out of its
  side).  Skipped, with a message, where ``gnuradio`` is not importable.

Every measurement is a fresh process; the configurations alternate,
``--trials`` times each, and the median is reported as MSa/s and as MSa/s
per CPU-second (user + sys of all threads from ``getrusage``).  The last
line is the headline: our MSa/s and our ratio per CPU-second to GNU Radio
with large buffers (to the bare loop where GNU Radio is absent).
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHUNK = 64 * 1024
FFT_SIZE = 1024


def _arrays(np):
    rng = np.random.default_rng(0)
    return [(rng.standard_normal(2 * CHUNK, dtype=np.float32) * 0.1).view(np.complex64)
            for _ in range(8)]


def _cpu():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_ours(samples):
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from pyrf_blocks import Graph, calibrate_block, collector, fft_block, max_hold
    from pyrf_blocks.testing import array_source

    arrays = _arrays(np)

    def run(repeat):
        graph = Graph()
        source = array_source(arrays, rate=125e6, repeat=repeat, graph=graph,
                              meta={"center_frequency": 2.4e9, "reference_level": 0.0})
        sink = collector(max_hold(calibrate_block(fft_block(source, size=FFT_SIZE))), keep=1)
        graph.run(optimise=True)
        return sink

    run(1)
    repeat = max(1, samples // (CHUNK * len(arrays)))
    cpu, start = _cpu(), time.perf_counter()
    sink = run(repeat)
    elapsed, cpu = time.perf_counter() - start, _cpu() - cpu
    assert sink.chunks[-1].seq == repeat * len(arrays) - 1
    return repeat * len(arrays) * CHUNK, elapsed, cpu


def run_bare(samples):
    import numpy as np
    import scipy.fft
    import scipy.signal

    arrays = _arrays(np)
    rows = CHUNK // FFT_SIZE
    shifted = scipy.signal.get_window("hann", FFT_SIZE).astype(np.float32)
    shifted[1::2] *= -1  # the fftshift, folded into the window
    weighted = np.empty((rows, FFT_SIZE), np.complex64)
    power = np.empty((rows, FFT_SIZE), np.float32)
    hold = np.full(FFT_SIZE, -np.inf, np.float32)
    offset = np.float32(-20 * np.log10(shifted.sum()))
    repeat = max(1, samples // (CHUNK * len(arrays)))

    def loop(times):
        for _ in range(times):
            for chunk in arrays:
                np.multiply(chunk.reshape(rows, FFT_SIZE), shifted, out=weighted)
                spectra = scipy.fft.fft(weighted, axis=-1, overwrite_x=True, workers=1)
                np.abs(spectra, out=power)
                np.multiply(power, power, out=power)
                np.log10(power, out=power)
                np.multiply(power, 10, out=power)
                np.add(power, offset, out=power)
                np.maximum(hold, power.max(axis=0), out=hold)

    loop(1)
    cpu, start = _cpu(), time.perf_counter()
    loop(repeat)
    return repeat * len(arrays) * CHUNK, time.perf_counter() - start, _cpu() - cpu


def run_gnuradio(samples, large):
    import numpy as np
    from gnuradio import blocks, fft, gr
    from gnuradio.fft import window

    data = np.concatenate(_arrays(np))
    top = gr.top_block()
    source = blocks.vector_source_c(data.tolist(), True)
    head = blocks.head(gr.sizeof_gr_complex, samples)
    to_vector = blocks.stream_to_vector(gr.sizeof_gr_complex, FFT_SIZE)
    transform = fft.fft_vcc(FFT_SIZE, True, window.hann(FFT_SIZE), True, 1)
    magnitude = blocks.complex_to_mag_squared(FFT_SIZE)
    decibels = blocks.nlog10_ff(10, FFT_SIZE, 0.0)
    sink = blocks.null_sink(gr.sizeof_float * FFT_SIZE)
    chain = [source, head, to_vector, transform, magnitude, decibels, sink]
    if large:
        # 8 MiB per output buffer, whatever its item (a sample or a vector).
        item_sizes = [gr.sizeof_gr_complex] * 2 + [gr.sizeof_gr_complex * FFT_SIZE] * 2 \
            + [gr.sizeof_float * FFT_SIZE] * 2
        for block, item_size in zip(chain[:-1], item_sizes):
            block.set_min_output_buffer((8 << 20) // item_size)
    top.connect(*chain)
    cpu, start = _cpu(), time.perf_counter()
    top.run()
    return samples, time.perf_counter() - start, _cpu() - cpu


RUNNERS = {
    "ours": lambda n: run_ours(n),
    "ours, pocketfft": lambda n: run_ours(n),
    "ours, numpy kernels": lambda n: run_ours(n),
    "bare scipy": lambda n: run_bare(n),
    "GNU Radio, default buffers": lambda n: run_gnuradio(n, False),
    "GNU Radio, large buffers": lambda n: run_gnuradio(n, True),
}


def gnuradio_python():
    """
    ``(interpreter that imports gnuradio, None)``, or ``(None, why not)``:
    this one, else the system's ``/usr/bin/python3`` (Debian's
    ``gnuradio`` is built for it and its numpy).
    """
    try:
        import gnuradio.gr  # noqa: F401 (only whether it imports)
        return sys.executable, None
    except ImportError as error:
        why = str(error)
    system = "/usr/bin/python3"
    if os.path.exists(system) and os.path.realpath(system) != os.path.realpath(sys.executable):
        probe = subprocess.run([system, "-c", "import gnuradio.gr, numpy"],
                               capture_output=True, text=True)
        if probe.returncode == 0:
            return system, None
    return None, why


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0,
                        help="approximate seconds per measurement")
    parser.add_argument("--trials", type=int, default=5, help="measurements per configuration")
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        samples, elapsed, cpu = RUNNERS[args.measure[0]](int(args.measure[1]))
        print(json.dumps({"msa": samples / elapsed / 1e6, "per_cpu": samples / cpu / 1e6,
                          "cores": cpu / elapsed}))
        return
    configurations = list(RUNNERS)
    try:
        import numba  # noqa: F401
    except ImportError:
        print("ours uses numpy's kernels: numba is not installed "
              "(pip install 'pyrf_blocks[numba]' for the compiled ones)")
        configurations.remove("ours, numpy kernels")
    gnuradio, missing = gnuradio_python()
    if missing:
        print(f"GNU Radio skipped: gnuradio is not importable ({missing}); "
              "on Debian: apt-get install gnuradio")
        configurations = [c for c in configurations if not c.startswith("GNU Radio")]
    samples = int(args.seconds * 200e6) // (CHUNK * 8) * CHUNK * 8
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    results = {c: [] for c in configurations}
    for _ in range(args.trials):
        for configuration in configurations:
            run_env = dict(env)
            if configuration == "ours, pocketfft":
                run_env["PYRF_BLOCKS_FFT"] = "pocketfft"
            if configuration == "ours, numpy kernels":
                run_env["PYRF_BLOCKS_KERNELS"] = "numpy"
            python = gnuradio if configuration.startswith("GNU Radio") else sys.executable
            out = subprocess.run([python, __file__, "--measure", configuration,
                                  str(samples)], check=True, capture_output=True, text=True,
                                 env=run_env).stdout
            results[configuration].append(json.loads(out.strip().splitlines()[-1]))
    median = {c: {key: statistics.median(r[key] for r in runs) for key in runs[0]}
              for c, runs in results.items()}
    if not missing and gnuradio != sys.executable:
        print(f"GNU Radio measured with {gnuradio} (the interpreter its package is built for)")
    print(f"{samples / 2**20:.0f} Mi samples per measurement, {args.trials} trials each, "
          f"median; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores "
          "(machine shared with other work)")
    ours = median["ours"]
    for configuration, figures in median.items():
        print(f"  {configuration:28s} {figures['msa']:7.1f} MSa/s on {figures['cores']:.2f} "
              f"cores, {figures['per_cpu']:7.1f} MSa/s per CPU-second; ours per CPU-second "
              f"{ours['per_cpu'] / figures['per_cpu']:.2f}x")
    if missing:
        reference, name = median["bare scipy"], "the bare scipy loop"
    else:
        reference, name = median["GNU Radio, large buffers"], "GNU Radio (large buffers)"
    plain = median.get("ours, numpy kernels")
    if plain is not None:
        print(f"with numpy's kernels (PYRF_BLOCKS_KERNELS=numpy): {plain['msa']:.1f} MSa/s, "
              f"{plain['per_cpu'] / reference['per_cpu']:.2f}x {name} per CPU-second")
    print(f"spectrum chain: ours {ours['msa']:.1f} MSa/s, {ours['per_cpu']:.1f} MSa/s per "
          f"CPU-second, {ours['per_cpu'] / reference['per_cpu']:.2f}x {name} per CPU-second")


if __name__ == "__main__":
    main()
