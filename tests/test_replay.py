"""
History = live: the example pipeline file run live (V and I from waveform sources,
recorded together in one two-channel SigMF file) and the same file replayed
over that recording give exactly the same outputs; the replay command.
"""

from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from twisted.internet.task import Clock

from pyrf_blocks import Graph
from pyrf_blocks.cli import main
from pyrf_blocks.errors import PipelineError
from pyrf_blocks.pipeline import build, check_file
from pyrf_blocks.pipeline.loader import read_document
from pyrf_blocks.replay import replay_pipeline
from pyrf_blocks.testing import run_clock

ROOT = Path(__file__).resolve().parents[1]
#: The example pipeline: V and I, windows, a moving max, THD, a recorder.
PIPELINE = (ROOT / "examples" / "power_windows.yaml").read_text()

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
    path.write_text(PIPELINE.replace("path: vi,", f"path: {recording},"))
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
    line = PIPELINE.splitlines().index("  I:") + 1
    assert f"other.yaml:{line}" in err and "its channels: V, I" in err
    assert main(["replay", str(tmp_path / "missing"), str(path), "--quiet"]) == 1
    assert "replay: cannot read" in capsys.readouterr().err


def test_channels_are_named_after_the_recorded_blocks(tmp_path):
    """record_channels without names stores the blocks' names; sigmf_source plays each one."""
    from pyrf_blocks import collector, record_channels, sigmf_source, waveform_source
    from pyrf_blocks.blocks.recording import recording_channels

    graph = Graph(Clock())
    volts = waveform_source(count=3, paced=False, graph=graph, name="V")
    amps = waveform_source(amplitude=2.0, count=3, paced=False, graph=graph, name="I")
    record_channels(volts, amps, path=tmp_path / "vi", datatype="rf32_le")
    live = collector(amps)
    assert run_clock(graph.reactor, graph) is None
    assert recording_channels(tmp_path / "vi") == ["V", "I"]
    history = Graph(Clock())
    replayed = collector(sigmf_source(tmp_path / "vi", channel="I", graph=history))
    assert run_clock(history.reactor, history) is None
    assert_array_equal(replayed.data(), live.data())
    with pytest.raises(ValueError, match="no channel 'X'; its channels: V, I"):
        sigmf_source(tmp_path / "vi", channel="X")


def test_the_power_converter_file_replayed_gives_its_live_outputs(tmp_path):
    """examples/power_converter.yaml: per-cycle efficiency, 4 s max, THD at 50 %, CEC: same bits."""
    text = (ROOT / "examples" / "power_converter.yaml").read_text()
    path = tmp_path / "converter.yaml"
    path.write_text(text.replace("path: converter}", f"path: {tmp_path / 'converter'}}}"))
    # (cec:running is left out: a running estimate comes with each chunk that arrives.)
    sinks = ("efficiencies", "best_4s", "thd_50", "cec_final")
    graph = build(check_file(path), Graph(Clock()))
    assert run_clock(graph.reactor, graph) is None
    assert graph.blocks["record"].channels == 4
    live = {name: graph.blocks[name] for name in sinks}
    pipeline, _, sources = replay_pipeline(read_document(path), tmp_path / "converter",
                                           chunk_size=333)
    assert sorted(sources) == ["I_in", "I_out", "V_in", "V_out"]
    history = build(pipeline, Graph(Clock()))
    assert run_clock(history.reactor, history) is None
    for name in sinks:
        before, after = live[name], history.blocks[name]
        assert_array_equal(np.concatenate([c.times for c in after.chunks]),
                           np.concatenate([c.times for c in before.chunks]), err_msg=name)
        assert after.data().tobytes() == before.data().tobytes(), name
    cec = live["cec_final"].chunks[0]
    assert cec.meta["missing"] == [30.0] and cec.data["missing"][0] == 1
    assert np.isnan(cec.data["efficiency"][0])
    assert_allclose([e for e in cec.meta["bins"]["efficiency"] if e == e],
                    [88.0, 92.0, 95.0, 95.5, 95.0], atol=0.05)
    assert live["thd_50"].data()["count"][0] == 10
    assert len(live["efficiencies"].data()) == 600


def test_the_power_converter_how_to_runs_as_written(capsys):
    """The how-to page's code runs: the THD, the CEC result with 30 % missing, history = live."""
    from test_docs import code_blocks

    page = ROOT / "docs" / "howto" / "power_converter_efficiency.rst"
    (block,) = [b for b in code_blocks(page) if "import" in b]
    exec(compile(block, str(page), "exec"), {"__name__": "docs_example"})
    out = capsys.readouterr().out
    assert "THD of I_in at 50 % load: 9.44 %" in out and "nan [30.0]" in out
    assert "{10.0: 88.0, 20.0: 92.0, 30.0: nan, 50.0: 95.0, 75.0: 95.5, 100.0: 95.0}" in out
    assert out.rstrip().endswith("history = live")
