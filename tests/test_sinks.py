"""
Printers write what a person reads, named by the block they read: a
spectrum's peak frequency and level, peak tables, values with units.
"""

import io
import re

import numpy as np
from twisted.internet.task import Clock

from pyrf_blocks import (Graph, calibrate_block, fft_block, peak_search, printer,
                         simulated_instrument)
from pyrf_blocks.chunk import Chunk
from pyrf_blocks.blocks.sinks import format_chunk
from pyrf_blocks.testing import array_source, run_clock


def test_two_chains_print_lines_named_by_their_blocks():
    """Spectra read as peak frequency and level in dBm, peak tables as a table, each after its block's name."""
    clock = Clock()
    graph = Graph(clock)
    stream = io.StringIO()
    wsa = simulated_instrument(graph=graph, tones=[(1.25e6, -30.0)], noise_floor=None,
                               paced=False, count=2)
    narrow = calibrate_block(fft_block(wsa, size=1024, window="flattop"), name="narrow")
    wide = calibrate_block(fft_block(wsa, size=256, window="flattop"), name="wide")
    printer(narrow, stream=stream)
    printer(wide, stream=stream)
    printer(peak_search(narrow, count=3), stream=stream)
    run_clock(clock, graph)
    text = stream.getvalue()
    lines = text.splitlines()
    narrow_lines = [line for line in lines if line.startswith("narrow: spectrum at ")]
    wide_lines = [line for line in lines if line.startswith("wide: spectrum at ")]
    assert narrow_lines and wide_lines, text
    reading = re.search(r"peak (\S+) MHz at -30.00 dBm \(RBW 28.76 kHz\)$", narrow_lines[0])
    assert reading and abs(float(reading[1]) - 2401.25) < 1e-4, narrow_lines[0]  # 0.013 bin
    assert "(RBW 115.06 kHz)" in wide_lines[0]
    assert "float32" not in text and "[16, 1024]" not in text
    table = lines.index(next(line for line in lines if line.startswith("peak_search: peak table at")))
    rank, frequency, *rest = lines[table + 1].split()
    assert rank == "1" and abs(float(frequency) - 2401.25) < 1e-4 and rest == ["MHz", "-30.00", "dBm"]


def test_scalars_and_records_print_values_with_units():
    """A scalar reads 'thd at ... s: 4.25 %'; records one line each, every field with its unit."""
    scalar = Chunk("scalar", np.array([4.25]), 0, 100_000_000, 10.0,
                   meta={"units": "%", "quantity": "thd"})
    assert format_chunk(scalar) == "thd at 0.000000 s: 4.25 %"
    values = np.array([(21.5, 230.1), (21.7, 229.8)], dtype=[("t", "f8"), ("v", "f8")])
    records = Chunk.records(np.array([1_000_000_000, 2_500_000_000]), values,
                            meta={"units": {"t": "degC", "v": "V"}})
    assert format_chunk(records).splitlines() == [
        "record at 1.000000 s: t=21.5 degC, v=230.1 V",
        "record at 2.500000 s: t=21.7 degC, v=229.8 V"]
    plain = Chunk.records(np.array([0]), np.array([3.0]), meta={"units": "W"})
    assert format_chunk(plain) == "record at 0.000000 s: 3 W"


def test_an_empty_peak_table_says_so():
    """A peak table with no peak (noise only) prints a line saying so, not nothing."""
    clock = Clock()
    graph = Graph(clock)
    stream = io.StringIO()
    source = array_source([np.full((1, 64), -100.0, np.float32)], kind="spectrum", rate=10.0,
                          graph=graph, meta={"units": "dBm", "start_frequency": 0.0,
                                             "bin_width": 1.0})
    printer(peak_search(source, name="peaks"), stream=stream)
    run_clock(clock, graph)
    assert stream.getvalue().splitlines() == [
        "peaks: peak table at 0.000000 s:",
        "  no peaks (none rises above the threshold and excursion)"]
