"""
History = live: a pipeline file run live (V and I from waveform sources,
recorded together in one two-channel SigMF file) and the same file replayed
over that recording give exactly the same outputs; the replay command.
"""

import textwrap

import numpy as np
import pytest
from numpy.testing import assert_array_equal
from twisted.internet.task import Clock

from pyrf_blocks import Graph
from pyrf_blocks.cli import main
from pyrf_blocks.errors import PipelineError
from pyrf_blocks.pipeline import build, check_file
from pyrf_blocks.pipeline.loader import read_document
from pyrf_blocks.replay import replay_pipeline
from pyrf_blocks.testing import run_clock

PIPELINE = """\
version: 1
blocks:
  V:
    type: waveform_source
    params: {amplitude: 325, harmonics: [[3, 0.03], [5, 0.04]], noise: 0.5,
             sample_rate: 10kHz, samples_per_chunk: 1000, count: 30, paced: false,
             start_time: 1774742400000000000}
  I:
    type: waveform_source
    params: {amplitude: 10, phase: -30, noise: 0.01, seed: 1, sample_rate: 10kHz,
             samples_per_chunk: 1000, count: 30, paced: false,
             start_time: 1774742400000000000}
  power: {type: power_block, inputs: [V, I]}
  per_second:
    type: window_block
    inputs: [power]
    params: {every: 1s, stats: [mean, rms, min, max, count], allowed_lateness: 250ms}
  per_quarter:
    type: window_block
    inputs: [V, I]
    params: {every: 250ms, size: 1s, stats: [rms], idle_timeout: 10s}
  peak: {type: moving_max, inputs: [power], params: {over: 400ms}}
  thd: {type: thd_block, inputs: [V], params: {size: 2000}}
  record: {type: record_channels, inputs: [V, I], params: {path: RECORDING, names: [V, I]}}
  windows: {type: collector, inputs: [per_second]}
  early: {type: collector, inputs: ["per_second:updates"]}
  quarters: {type: collector, inputs: [per_quarter]}
  peaks: {type: collector, inputs: [peak]}
  thds: {type: collector, inputs: [thd]}
"""

SINKS = ("windows", "quarters", "peaks", "thds")


def outputs(graph):
    """Each collector's rows joined, with their times (records) or range (samples)."""
    found = {}
    for name in SINKS:
        chunks = graph.blocks[name].chunks
        data = np.concatenate([c.data for c in chunks])
        times = (np.concatenate([c.times for c in chunks]) if chunks[0].times is not None
                 else np.array([chunks[0].start, chunks[-1].end]))
        found[name] = (times, data)
    return found


@pytest.fixture
def recorded(tmp_path):
    """The live run: (pipeline file, recording, its outputs)."""
    recording = tmp_path / "vi"
    path = tmp_path / "power.yaml"
    path.write_text(PIPELINE.replace("RECORDING", str(recording)))
    graph = build(check_file(path), Graph(Clock()))
    assert run_clock(graph.reactor, graph) is None
    assert graph.blocks["record"].channels == 2
    return path, recording, outputs(graph)


def test_history_gives_exactly_the_outputs_of_the_live_run(recorded):
    """The file replayed over its own V/I recording, cut differently, gives the same bits."""
    path, recording, live = recorded
    pipeline, notes, sources = replay_pipeline(read_document(path), recording, chunk_size=777)
    assert sources == {"V": "V", "I": "I"}
    assert "record" not in pipeline.blocks
    assert any("idle_timeout off" in note for note in notes)
    graph = build(pipeline, Graph(Clock()))
    assert run_clock(graph.reactor, graph) is None
    history = outputs(graph)
    for name in SINKS:
        assert_array_equal(history[name][0], live[name][0], err_msg=name)
        assert history[name][1].tobytes() == live[name][1].tobytes(), name
    assert len(live["windows"][0]) == 3 and (live["windows"][1]["count"] == 10_000).all()


def test_replay_command_runs_the_file_over_the_recording(recorded, capsys):
    """pyrf-blocks replay REC FILE exits 0 and reports what each sink took."""
    path, recording, _ = recorded
    assert main(["replay", str(recording), str(path), "--quiet", "--chunk-size", "4096"]) == 0
    err = capsys.readouterr().err
    assert "recorder 'record' left out" in err
    assert "collector 'windows': " in err and "finished" in err


def test_a_source_without_a_channel_is_refused_at_its_line(recorded, tmp_path, capsys):
    """A source named after no recorded channel: one message naming it and the channels."""
    path, recording, _ = recorded
    other = tmp_path / "other.yaml"
    other.write_text(path.read_text().replace("  I:\n", "  current:\n")
                     .replace("[V, I]", "[V, current]"))
    with pytest.raises(PipelineError, match="source 'current' has no channel"):
        replay_pipeline(read_document(other), recording)
    assert main(["replay", str(recording), str(other), "--quiet"]) == 1
    err = capsys.readouterr().err
    assert "other.yaml:8" in err and "its channels: V, I" in err
    assert main(["replay", str(tmp_path / "missing"), str(path), "--quiet"]) == 1
    assert "replay: cannot read" in capsys.readouterr().err
