"""
How long checking a pipeline file takes, against just parsing its YAML.

A file of N independent chains (source -> FFT -> calibrate -> max hold ->
collector) is checked completely (schema, parameters with units, inputs,
interfaces, cycles); the baseline in the same run is ruamel.yaml's own safe
load of the same text.  The last line is the headline: milliseconds per
100 blocks, and the ratio to the bare parse.

    PYTHONPATH=. python benchmarks/pipeline_check.py [CHAINS]
"""

import sys
import time

from ruamel.yaml import YAML

from pyrf_blocks.pipeline import check_text


def pipeline_text(chains):
    lines = ["version: 1", "blocks:"]
    for n in range(chains):
        lines += [
            f"  wsa{n}:", "    type: simulated_instrument",
            f"    params: {{center_frequency: {2 + n / 1000:.3f}GHz, sample_rate: 7.8125MHz, "
            f"tones: [[1MHz, -20dBm]], seed: {n}}}",
            f"  fft{n}: {{type: fft_block, inputs: [wsa{n}], params: {{size: 1Ki}}}}",
            f"  cal{n}: {{type: calibrate_block, inputs: [fft{n}], params: {{offset: 1.5dB}}}}",
            f"  hold{n}: {{type: max_hold, inputs: [cal{n}]}}",
            f"  out{n}: {{type: collector, inputs: [hold{n}], policy: latest}}",
        ]
    return "\n".join(lines) + "\n"


def best_of(function, repeats=5):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return min(times)


def main(chains=200):
    text = pipeline_text(chains)
    blocks = chains * 5
    check_text(text)  # warm: block types imported, parameter models made
    yaml = YAML(typ="safe", pure=True)
    parse = best_of(lambda: yaml.load(text))
    check = best_of(lambda: check_text(text))
    print(f"{blocks} blocks, {len(text) / 1024:.0f} KiB of YAML")
    print(f"ruamel.yaml safe load (baseline): {parse * 1e3:.1f} ms")
    print(f"check_text (parse with marks + full check): {check * 1e3:.1f} ms")
    print(f"checking: {check * 1e3 / blocks * 100:.2f} ms per 100 blocks, "
          f"{check / parse:.2f}x the bare YAML parse")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)
