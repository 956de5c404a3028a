"""
History: one pipeline over many recordings gives, on Dask, exactly what a
serial run gives; a large recording streams through in chunks; the
command reports and saves per recording.
"""

import json
import tracemalloc

import numpy as np
import pytest
from numpy.testing import assert_array_equal

from pyrf_blocks.chunk import decode_chunks
from pyrf_blocks.cli import main
from pyrf_blocks.history import replay, replay_one

PIPELINE = """
version: 1
blocks:
  recording: {type: sigmf_source, params: {path: unset, chunk_size: 4096}}
  fft: {type: fft_block, inputs: [recording], params: {size: 256}}
  dbm: {type: calibrate_block, inputs: [fft]}
  hold: {type: max_hold, inputs: [dbm]}
  last: {type: collector, inputs: [hold], params: {keep: 1}}
"""


def write_recording(path, samples, rate=1e6, frequency=1e8):
    """A cf32_le SigMF recording of ``samples`` at ``path``."""
    np.asarray(samples, np.complex64).tofile(f"{path}.sigmf-data")
    meta = {"global": {"core:datatype": "cf32_le", "core:sample_rate": rate,
                       "core:version": "1.0.0"},
            "captures": [{"core:sample_start": 0, "core:frequency": frequency}],
            "annotations": []}
    with open(f"{path}.sigmf-meta", "w", encoding="utf-8") as stream:
        json.dump(meta, stream)
    return str(path)


@pytest.fixture
def recordings(tmp_path):
    """Three short recordings of a tone in noise, each different."""
    paths = []
    for index in range(3):
        rng = np.random.default_rng(index)
        n = 20000 + 3000 * index
        tone = 0.1 * np.exp(2j * np.pi * (0.05 + 0.1 * index) * np.arange(n))
        noise = rng.standard_normal(2 * n).view(np.complex128) * 1e-3
        paths.append(write_recording(tmp_path / f"rec{index}", tone + noise))
    return paths


def _assert_same(results, expected):
    assert [r.recording for r in results] == [r.recording for r in expected]
    for got, want in zip(results, expected):
        assert got.samples == want.samples and got.sinks.keys() == want.sinks.keys()
        for name in want.sinks:
            for a, b in zip(got.sinks[name], want.sinks[name], strict=True):
                assert_array_equal(a.data, b.data)
                assert (a.start, a.end, a.seq, a.meta) == (b.start, b.end, b.seq, b.meta)


def test_each_recording_runs_its_own_graph(recordings):
    """Each result is the pipeline run over that recording alone, in the order given."""
    results = replay(PIPELINE, recordings)
    assert [r.samples for r in results] == [20000, 23000, 26000]
    peaks = [int(np.argmax(r.sinks["last"][-1].data[0])) for r in results]
    assert peaks == sorted(peaks) and len(set(peaks)) == 3  # the tone moves up per recording
    _assert_same([replay_one(PIPELINE, recordings[1])], results[1:2])


def test_dask_gives_the_serial_results(recordings):
    """On a 2-worker Dask LocalCluster the results equal the serial run's, in order."""
    pytest.importorskip("dask.distributed")
    _assert_same(replay(PIPELINE, recordings, dask=True, workers=2), replay(PIPELINE, recordings))


def test_a_large_recording_streams_through_in_chunks(tmp_path):
    """A 32 MiB recording is read chunk by chunk: Python never holds more than a few MiB of it."""
    samples = 4 << 20
    data = np.zeros(samples, np.complex64)
    data[::7] = 0.5
    path = write_recording(tmp_path / "large", data)
    replay_one(PIPELINE, path)  # plans and caches first
    tracemalloc.start()
    try:
        result = replay_one(PIPELINE, path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.samples == samples and len(result.sinks["last"]) == 1
    assert peak < 4 << 20, f"{peak / 2**20:.1f} MiB held for a 32 MiB recording"


def test_the_history_command_reports_and_saves(recordings, tmp_path, capsys):
    """pyrf-blocks history prints a line per recording and saves decodable chunks."""
    pipeline = tmp_path / "hold.yaml"
    pipeline.write_text(PIPELINE)
    saved = tmp_path / "out"
    assert main(["history", str(pipeline), *recordings, "--quiet", "--save", str(saved)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{path}: {n} samples; last: 1 chunk"
                     for path, n in zip(recordings, (20000, 23000, 26000))]
    expected = replay(PIPELINE, recordings[:1])[0].sinks["last"]
    chunks = decode_chunks((saved / "rec0.last.chunks").read_bytes())
    assert_array_equal(chunks[0].data, expected[0].data)


def test_a_pipeline_without_a_recording_source_is_refused(tmp_path, capsys):
    """A pipeline with no sigmf_source is refused in one line, exit status 1."""
    pipeline = tmp_path / "live.yaml"
    pipeline.write_text("version: 1\nblocks:\n  wsa: {type: simulated_instrument}\n"
                        "  out: {type: collector, inputs: [wsa]}\n")
    assert main(["history", str(pipeline), "nothing", "--quiet"]) == 1
    error = capsys.readouterr().err.strip()
    assert error.count("\n") == 0 and "needs one sigmf_source block" in error
