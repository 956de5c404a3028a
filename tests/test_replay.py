"""
Replay: the example pipeline file run live (V and I from waveform sources,
recorded together in one two-channel SigMF file) and the same file replayed
over that recording give exactly the same outputs (history = live); one
pipeline over many recordings gives, on Dask, exactly what a serial run
gives; a large recording streams through in chunks; the replay command
reports, saves and refuses in one line.
"""

import json
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from twisted.internet.task import Clock

from pyrf_blocks import Graph
from pyrf_blocks.chunk import decode_chunks
from pyrf_blocks.cli import main
from pyrf_blocks.errors import PipelineError, ReplayError
from pyrf_blocks.pipeline import build, check_file
from pyrf_blocks.pipeline.loader import read_document
from pyrf_blocks.replay import replay, replay_one, replay_pipeline
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
    out, err = capsys.readouterr()
    assert "recorder 'record' left out" in err
    assert "collector 'windows': " in err and "finished" in err
    assert out.startswith(f"{recording}: 30000 samples; windows: ")


@pytest.fixture(scope="module")
def dask_client():
    """A client of replay's 2-worker local cluster, shared by this module's Dask tests."""
    distributed = pytest.importorskip("dask.distributed")
    from pyrf_blocks.replay import local_cluster

    cluster = local_cluster(2)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


def test_history_on_dask_gives_exactly_the_outputs_of_the_live_run(recorded, dask_client):
    """The two-channel V/I replay run as a Dask task gives the live run's bits too."""
    path, recording, live = recorded
    result, = replay(path.read_text(), [recording], chunk_size=999, client=dask_client)
    for name in SINKS:
        data = np.concatenate([c.data for c in result.sinks[name]])
        assert data.tobytes() == live[name][1].tobytes(), name


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

# One pipeline over many recordings.

#: A pipeline written for recordings: its one source is a sigmf_source.
HOLD = """
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
        assert got.report == want.report
        for name in want.sinks:
            for a, b in zip(got.sinks[name], want.sinks[name], strict=True):
                assert_array_equal(a.data, b.data)
                assert (a.start, a.end, a.seq, a.meta) == (b.start, b.end, b.seq, b.meta)


def test_a_sigmf_source_is_fed_by_the_same_rule(recordings):
    """A pipeline's one sigmf_source reads the one-channel recording, keeping its own params."""
    from pyrf_blocks.pipeline.loader import load_document

    pipeline, notes, sources = replay_pipeline(load_document(HOLD), recordings[1])
    assert sources == {"recording": "0"} and notes == []
    assert pipeline.blocks["recording"].params == {
        "path": recordings[1], "channel": "0", "paced": False, "chunk_size": 4096}
    pipeline, _, _ = replay_pipeline(load_document(HOLD), recordings[1], chunk_size=100)
    assert pipeline.blocks["recording"].params["chunk_size"] == 100


def test_each_recording_runs_its_own_graph(recordings):
    """Each result is the pipeline run over that recording alone, in the order given."""
    results = replay(HOLD, recordings)
    assert [r.samples for r in results] == [20000, 23000, 26000]
    peaks = [int(np.argmax(r.sinks["last"][-1].data[0])) for r in results]
    assert peaks == sorted(peaks) and len(set(peaks)) == 3  # the tone moves up per recording
    _assert_same([replay_one(HOLD, recordings[1])], results[1:2])


def test_each_graph_is_optimised_with_the_same_results(recordings, fusions_made):
    """Each graph is optimised as pyrf-blocks run optimises it (the hold takes its FFT's extreme and calibrates it); optimise=False runs it as written, with the same bits."""
    results = replay(HOLD, recordings)
    assert fusions_made == [["hold_of_calibration", "hold_of_spectra"]] * 3
    fusions_made.clear()
    _assert_same(replay(HOLD, recordings, optimise=False), results)
    assert fusions_made == []


def test_dask_gives_the_serial_results(recordings, dask_client):
    """On a 2-worker Dask LocalCluster the results equal the serial run's, in order."""
    _assert_same(replay(HOLD, recordings, client=dask_client), replay(HOLD, recordings))


def test_a_scheduler_at_an_address_gives_the_serial_results(recordings, dask_client):
    """replay(address=) reaches a running scheduler (its handshake checked first) and gives the serial results."""
    _assert_same(replay(HOLD, recordings[:2], dask=True,
                        address=dask_client.scheduler.address, scheduler_timeout=10),
                 replay(HOLD, recordings[:2]))


@pytest.mark.timeout(60)
def test_a_scheduler_that_does_not_answer_fails_within_its_timeout(recordings, tmp_path,
                                                                   capsys, monkeypatch):
    """--dask at a closed port, or at one where something listens and says nothing: one line naming the address and --dask-timeout, exit 1, in that time (before: Dask's 30 s; without end for the silent one)."""
    import socket

    pytest.importorskip("dask.distributed")
    from pyrf_blocks.errors import SchedulerUnreachable

    monkeypatch.setattr("pyrf_blocks.commands.replay.log_warnings_to_stderr", lambda: None)
    pipeline = tmp_path / "hold.yaml"
    pipeline.write_text(HOLD)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = f"tcp://127.0.0.1:{probe.getsockname()[1]}"
    assert main(["replay", recordings[0], str(pipeline), "--quiet", "--dask", closed,
                 "--dask-timeout", "0.5"]) == 1
    error = capsys.readouterr().err.splitlines()
    assert len(error) == 1 and error[0].startswith(
        f"replay: no Dask scheduler answered at {closed} within 0.5 s ("), error
    assert error[0].endswith("); --dask-timeout gives a scheduler longer"), error
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(SchedulerUnreachable, match=f"^no Dask scheduler answered at "
                                                       f"{address} within 1 s"):
            replay(HOLD, recordings[:1], dask=True, address=address, scheduler_timeout=1)


def test_dask_timeout_needs_an_address_and_a_sane_time(recordings, tmp_path, capsys,
                                                        monkeypatch):
    """--dask-timeout without --dask ADDRESS, or of 1e30 s: one line, exit 2, nothing started."""
    monkeypatch.setattr("pyrf_blocks.commands.replay.log_warnings_to_stderr", lambda: None)
    pipeline = tmp_path / "hold.yaml"
    pipeline.write_text(HOLD)
    for options, message in (
            (["--dask", "--dask-timeout", "3"], "replay: --dask-timeout is how long the "
                                                "scheduler at --dask ADDRESS has to answer"),
            (["--dask-timeout", "3"], "replay: --dask-timeout is how long"),
            (["--dask", "tcp://127.0.0.1:1", "--dask-timeout", "1e30"],
             "replay: --dask-timeout must be more than 0 and less than 1e+06 seconds")):
        assert main(["replay", recordings[0], str(pipeline), "--quiet", *options]) == 2
        error = capsys.readouterr().err.splitlines()
        assert len(error) == 1 and error[0].startswith(message), error


def test_the_local_cluster_runs_without_the_dashboard_diagnostics(dask_client):
    """replay's LocalCluster: its workers run the settings of LOCAL_CLUSTER_CONFIG (no profiler)."""
    import dask

    from pyrf_blocks.replay import LOCAL_CLUSTER_CONFIG

    settings = dask_client.run(lambda: {key: dask.config.get(key)
                                        for key in LOCAL_CLUSTER_CONFIG})
    assert len(settings) == 2
    assert all(found == LOCAL_CLUSTER_CONFIG for found in settings.values())


def test_a_block_failing_on_dask_is_named_with_its_recording(recordings, dask_client):
    """On Dask too, a block that fails while it runs raises ReplayError naming the recording."""
    failing = HOLD.replace("hold: {type: max_hold, inputs: [dbm]}",
                           "again: {type: calibrate_block, inputs: [dbm]}\n"
                           "  hold: {type: max_hold, inputs: [again]}")
    with pytest.raises(ReplayError, match=r"calibrate_block 'again' needs linear power "):
        replay(failing, recordings[:2], client=dask_client)


def test_a_large_recording_streams_through_in_chunks(tmp_path):
    """A 32 MiB recording is read chunk by chunk: Python never holds more than a few MiB of it."""
    samples = 4 << 20
    data = np.zeros(samples, np.complex64)
    data[::7] = 0.5
    path = write_recording(tmp_path / "large", data)
    replay_one(HOLD, path)  # plans and caches first
    tracemalloc.start()
    try:
        result = replay_one(HOLD, path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.samples == samples and len(result.sinks["last"]) == 1
    assert peak < 4 << 20, f"{peak / 2**20:.1f} MiB held for a 32 MiB recording"


# The module's cluster holds the scheduler's default HTTP port (on loopback).
@pytest.mark.filterwarnings("ignore:Port 8787 is already in use")
def test_the_command_reports_and_saves_per_recording(recordings, tmp_path, capsys):
    """pyrf-blocks replay REC... FILE --dask: a line per recording, decodable saved chunks."""
    pytest.importorskip("dask.distributed")
    pipeline = tmp_path / "hold.yaml"
    pipeline.write_text(HOLD)
    saved = tmp_path / "out"
    assert main(["replay", *recordings, str(pipeline), "--quiet", "--save", str(saved),
                 "--dask", "--workers", "2"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [f"{path}: {n} samples; last: 1 chunk"
                                for path, n in zip(recordings, (20000, 23000, 26000))]
    assert f"{recordings[2]}: collector 'last': " in err
    expected = replay(HOLD, recordings[:1])[0].sinks["last"]
    chunks = decode_chunks((saved / "rec0.last.chunks").read_bytes())
    assert_array_equal(chunks[0].data, expected[0].data)
    # --no-optimise runs each graph as written: the same chunks.
    assert main(["replay", recordings[0], str(pipeline), "--quiet", "--no-optimise",
                 "--save", str(tmp_path / "as-written")]) == 0
    assert (tmp_path / "as-written" / "rec0.last.chunks").read_bytes() == (
        saved / "rec0.last.chunks").read_bytes()


def test_errors_are_one_line(recordings, tmp_path, capsys, monkeypatch):
    """No source, an unreadable recording among many, a failing block: one line, exit 1."""
    # The first command of a process to log to stderr writes what was logged before it.
    monkeypatch.setattr("pyrf_blocks.commands.replay.log_warnings_to_stderr", lambda: None)
    pipeline = tmp_path / "bad.yaml"
    pipeline.write_text("version: 1\nblocks:\n  out: {type: collector, inputs: [nowhere]}\n")
    assert main(["replay", recordings[0], str(pipeline), "--quiet"]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    pipeline.write_text(HOLD)
    assert main(["replay", recordings[0], str(tmp_path / "nothing"), str(pipeline),
                 "--quiet"]) == 1
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "replay: cannot read" in error
    # --dask right before the files takes the first one for a scheduler address.
    assert main(["replay", "--dask", recordings[0], recordings[1], str(pipeline)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "not a scheduler address" in error
    # A block that fails while it runs (dBm calibrated again) is named with the recording.
    pipeline.write_text(HOLD.replace("hold: {type: max_hold, inputs: [dbm]}",
                                     "again: {type: calibrate_block, inputs: [dbm]}\n"
                                     "  hold: {type: max_hold, inputs: [again]}"))
    # (Optimised, the hold computes that calibration, yet the error is the calibration's.)
    for optimise in (True, False):
        with pytest.raises(ReplayError,
                           match=f"^{recordings[0]}: calibrate_block 'again' needs linear "):
            replay(pipeline.read_text(), recordings[:1], optimise=optimise)
    assert main(["replay", recordings[0], str(pipeline), "--quiet"]) == 1
    assert (f"{pipeline}: {recordings[0]}: calibrate_block "
            "'again' needs linear power spectra (units 'power'), got units 'dBm'"
            in capsys.readouterr().err.splitlines())


def test_workers_size_only_a_local_cluster_and_at_most_four_per_core(recordings, tmp_path,
                                                                      capsys, monkeypatch):
    """--workers beyond 4 per core, or without --dask's local cluster, is refused in one line (exit 2) before any process starts; replay(workers=) alike."""
    from pyrf_blocks import replay as module

    # The first command of a process to log to stderr writes what was logged before it.
    monkeypatch.setattr("pyrf_blocks.commands.replay.log_warnings_to_stderr", lambda: None)
    monkeypatch.setattr(module.os, "cpu_count", lambda: 3)
    started = []
    monkeypatch.setattr(module, "local_cluster", lambda *args: started.append(args))
    pipeline = tmp_path / "hold.yaml"
    pipeline.write_text(HOLD)
    refusals = {
        ("--dask", "--workers", "13"): "a local cluster takes 1 to 12 worker processes on "
                                       "this machine (4 per core), got 13",
        ("--dask", "--workers", "100000"): "got 100000",
        ("--workers", "2"): "--workers sizes the local cluster of --dask",
        ("--dask", "tcp://127.0.0.1:1", "--workers", "2"): "a scheduler at an address has "
                                                           "its own workers",
    }
    for options, message in refusals.items():
        assert main(["replay", recordings[0], str(pipeline), "--quiet", *options]) == 2
        error = capsys.readouterr().err
        assert message in error and error.count("\n") == 1, error
    for kwargs in ({"dask": True, "workers": 13}, {"dask": True, "workers": True},
                   {"workers": 2}, {"dask": True, "address": "tcp://127.0.0.1:1", "workers": 2},
                   {"client": object(), "workers": 2}):
        with pytest.raises(ValueError, match="local cluster|workers= sizes"):
            replay(HOLD, recordings[:1], **kwargs)
    assert not started
    assert module.check_local_workers(12) == 12 and module.check_local_workers(None) is None
