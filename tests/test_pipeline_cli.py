"""
The ``validate`` and ``run`` commands: in-process for their messages and
exit codes, and as real subprocesses for running, SIGTERM and failures.
"""

import io
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time

import numpy as np
import pytest
from twisted.internet import task

from pyrf_blocks import Graph, collector
from pyrf_blocks.cli import main
from pyrf_blocks.testing import array_source, run_clock

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPECTRUM = os.path.join(ROOT, "examples", "spectrum.yaml")


def write(tmp_path, text, name="p.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def as_in_a_terminal():
    # A job started in the background by a non-interactive shell (as a CI
    # runner may start the suite) inherits SIGINT ignored; a user's
    # foreground command does not.  Give the child the terminal's default.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def command(*args, **environ):
    """A subprocess running ``pyrf-blocks`` from this worktree, ``environ`` added."""
    env = dict(os.environ, PYTHONPATH=ROOT, PYTHONUNBUFFERED="1", **environ)
    return subprocess.Popen([sys.executable, "-m", "pyrf_blocks.cli", *args], cwd=ROOT,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=as_in_a_terminal)


def test_validate_accepts_the_examples(capsys):
    """validate exits 0 and says each example is valid."""
    paths = [os.path.join(ROOT, "examples", name)
             for name in ("spectrum.yaml", "two_processes.yaml", "distributed.yaml")]
    assert main(["validate", *paths]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out == [f"{paths[0]}: valid, 6 blocks", f"{paths[1]}: valid, 8 blocks",
                   f"{paths[2]}: valid, 10 blocks"]


def test_validate_lists_every_problem_and_exits_1(tmp_path, capsys):
    """A broken file gives one line per mistake, a count, exit 1 and no traceback."""
    path = write(tmp_path, """\
        version: 1
        blocks:
          wsa:
            type: simulated_instrument
            params: {center_frequency: 2.4Ghz}
          fft: {type: fft_blok, inputs: [wsa]}
          calibrate: {type: calibrate_block, inputs: [wsa]}
    """)
    assert main(["validate", path]) == 1
    err = capsys.readouterr().err
    assert err.splitlines() == [
        f"{path}:5:32: block 'wsa' (simulated_instrument): center_frequency: '2.4Ghz' is "
        "not a frequency; write a number, optionally followed by one of: Hz, kHz, MHz, "
        "GHz, Sa/s, kSa/s, MSa/s, GSa/s",
        f"{path}:6:15: block 'fft' (fft_blok): unknown block type 'fft_blok'; did you mean "
        "'fft_block'?",
        f"{path}:7:47: block 'calibrate' (calibrate_block): input 1 must provide "
        "ISpectrumProducer, but block 'wsa' (simulated_instrument) provides IIQProducer",
        f"{path}: 3 problems"]
    assert "Traceback" not in err


def test_validate_reports_a_missing_file(tmp_path, capsys):
    """A file that cannot be read is one clear line and exit 1."""
    missing = str(tmp_path / "nowhere.yaml")
    assert main(["validate", missing]) == 1
    assert capsys.readouterr().err.splitlines()[0] == (
        f"{missing}: cannot read the file: No such file or directory")


def test_dry_run_prints_the_resolved_graph_and_dot(capsys):
    """--dry-run prints every block resolved and the Graphviz dot, and runs nothing."""
    assert main(["run", SPECTRUM, "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"pipeline {SPECTRUM}: 6 blocks, 1 sink\n")
    assert "      size = 1024\n" in out
    assert out.index("digraph") > out.index("spectrum: printer")
    assert out.rstrip().endswith("}")
    assert '"hold" -> "peaks";' in out


def test_run_refuses_a_bad_duration(capsys):
    """--for with a wrong unit exits 2 with a one-line reason naming the accepted units."""
    with pytest.raises(SystemExit) as caught:
        main(["run", SPECTRUM, "--for", "10 parsecs"])
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "'10 parsecs' is not a duration" in err and "ms, s, m" in err
    assert len(err.splitlines()) == 1


@pytest.mark.timeout(120)
def test_run_places_blocks_in_child_processes(tmp_path):
    """The seed's multiprocess file runs each chain in a child and brings every chunk back."""
    with open(os.path.join(ROOT, "examples", "two_processes.yaml"), encoding="utf-8") as f:
        text = f.read()
    # Finite, free-running instruments: the run ends when both streams do.
    finite = text.replace("seed: 1}", "seed: 1, count: 40, paced: false}").replace(
        "seed: 2}", "seed: 2, count: 40, paced: false}")
    assert finite.count("count: 40") == 2
    path = write(tmp_path, finite)
    proc = command("run", path)
    out, err = proc.communicate(timeout=110)
    assert proc.returncode == 0, err
    # The children share this stderr, so their log lines may cut into ours.
    assert "printer 'spectrum1': 40 chunks, finished" in err, err
    assert "printer 'spectrum2': 40 chunks, finished" in err, err
    # Each chain's first chunk (its last frame starts at 1.966 ms) came back.
    assert out.count(": spectrum at 0.001966 s: peak") == 2, out


@pytest.fixture
def token_worker():
    """The URL of a ``pyrf-blocks worker`` on loopback whose token is s3cret-token."""
    env = dict(os.environ, PYTHONPATH=ROOT, PYRF_BLOCKS_TOKEN="s3cret-token")
    worker = subprocess.Popen([sys.executable, "-m", "pyrf_blocks.cli", "worker",
                               "--listen", "tcp:0:interface=127.0.0.1"], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = worker.stdout.readline()
        assert line.startswith("listening on "), worker.stderr.read()
        yield line.removeprefix("listening on ").strip()
    finally:
        worker.kill()
        worker.communicate()


@pytest.mark.timeout(120)
def test_run_places_blocks_on_a_remote_worker(tmp_path, token_worker):
    """A worker reached by URL, its token read from token_env, runs the placed chain."""
    url = token_worker
    path = write(tmp_path, f"""\
        version: 1
        processes:
          lab: {{url: "{url}", token_env: LAB_TOKEN}}
        blocks:
          wsa: {{type: simulated_instrument, params: {{count: 20, paced: false}}}}
          fft: {{type: fft_block, inputs: [wsa], proc: lab}}
          cal: {{type: calibrate_block, inputs: [fft], proc: lab}}
          out: {{type: collector, inputs: [cal]}}
    """)
    proc = command("run", path, LAB_TOKEN="s3cret-token")
    out, err = proc.communicate(timeout=100)
    assert proc.returncode == 0, err
    assert "collector 'out': 20 chunks, finished" in err, err


@pytest.mark.timeout(120)
def test_run_for_a_duration_ends_a_source_placed_on_a_worker(tmp_path, token_worker):
    """run --for 1s with the source and the FFT on a worker: ends soon, every spectrum here."""
    url = token_worker
    path = write(tmp_path, f"""\
        version: 1
        processes:
          lab: {{url: "{url}", token_env: LAB_TOKEN}}
        blocks:
          wsa: {{type: simulated_instrument, params: {{model: WSA4000}}, proc: lab}}
          fft: {{type: fft_block, inputs: [wsa], proc: lab}}
          out: {{type: collector, inputs: [fft]}}
    """)
    started = time.monotonic()
    proc = command("run", path, "--for", "1s", LAB_TOKEN="s3cret-token")
    out, err = proc.communicate(timeout=60)  # before the fix: never returned
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, err
    taken = re.search(r"collector 'out': (\d+) chunks?, finished", err)
    assert taken and int(taken.group(1)) > 0, err
    # The end came from the worker, after all it emitted: nothing cut
    # short here, nothing dropped on the way.
    assert "could not end" not in err and "dropped" not in err
    assert elapsed < 1 + 15


@pytest.mark.timeout(60)
def test_run_for_bounds_the_retries_of_an_unresolvable_worker(tmp_path):
    """--for 1s with a worker whose name does not resolve: exit 1 naming it, retries cut short."""
    path = write(tmp_path, """\
        version: 1
        processes:
          lab: {url: "http://no-such-host.invalid:8750", token_env: LAB_TOKEN}
        blocks:
          wsa: {type: simulated_instrument, proc: lab}
          fft: {type: fft_block, inputs: [wsa], proc: lab}
          out: {type: collector, inputs: [fft]}
    """)
    proc = command("run", path, "--for", "1s", LAB_TOKEN="x")
    out, err = proc.communicate(timeout=50)
    assert proc.returncode == 1, err
    assert (f"{path}: fft_block 'fft': worker "
            "http://no-such-host.invalid:8750 was not reached before the graph stopped "
            "(DNS lookup failed") in err
    # Before the fix the retries ran their course (9 s, 8 of them) whatever --for said.
    assert "retry 8 of 8" not in err and "retry 1 of 8" in err
    assert "Traceback" not in err


def test_run_refuses_a_pipeline_without_sink(tmp_path, capsys):
    """Nothing would run without a sink: run says so instead of waiting forever."""
    path = write(tmp_path, """\
        version: 1
        blocks:
          wsa: {type: simulated_instrument}
          fft: {type: fft_block, inputs: [wsa]}
    """)
    assert main(["run", path]) == 1
    assert "no block is a sink, so nothing would run" in capsys.readouterr().err


@pytest.mark.timeout(60)
def test_run_for_a_duration():
    """run --for runs the seed example in a real process and reports its sink finished."""
    proc = command("run", SPECTRUM, "--for", "300ms")
    out, err = proc.communicate(timeout=50)
    assert proc.returncode == 0, err
    assert out.startswith("peaks: peak table at 0.001966 s:"), out  # the first chunk
    assert "MHz" in out and "dBm" in out
    assert err.strip().startswith("printer 'spectrum': ")
    assert re.search(r"\d+ chunks?, finished$", err.strip()), err


@pytest.mark.timeout(60)
@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT],
                         ids=["SIGTERM", "SIGINT"])
def test_a_signal_stops_cleanly_and_flushes(signal_number):
    """SIGTERM or Ctrl-C ends the sources' streams: sinks finish, exit 0, no traceback."""
    proc = command("run", SPECTRUM)
    try:
        first = proc.stdout.readline()  # the pipeline is running
        assert first.startswith("peaks: peak table at 0.001966 s:"), proc.stderr.read()
        proc.send_signal(signal_number)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "Unhandled" not in err
    assert re.search(r"\d+ chunks?, finished$", err.strip()), err


@pytest.mark.timeout(60)
def test_a_failing_block_is_named(tmp_path):
    """A block that raises while running is named in one line, and run exits 1."""
    path = write(tmp_path, """\
        version: 1
        blocks:
          wsa: {type: simulated_instrument, params: {paced: false}}
          fft: {type: fft_block, inputs: [wsa]}
          cal: {type: calibrate_block, inputs: [fft]}
          again: {type: calibrate_block, inputs: [cal]}
          out: {type: collector, inputs: [again]}
    """)
    proc = command("run", path, "--for", "5s")
    out, err = proc.communicate(timeout=50)
    assert proc.returncode == 1
    assert (f"{path}: calibrate_block 'again' needs linear "
            "power spectra (units 'power'), got units 'dBm'") in err.splitlines()


def test_summary_counts_chunks_and_drops():
    """The end-of-run summary gives each sink's chunks and every edge's drops."""
    clock = task.Clock()
    graph = Graph(clock)
    source = array_source([np.zeros(4)] * 10, graph=graph, name="samples")
    slow = collector(source, name="slow", policy="drop_oldest", maxsize=2)
    collector(source, name="fast")
    slow_edge = source.edges[0]
    slow_edge.pauseProducing()  # a consumer that cannot keep up
    clock.advance(0)
    slow_edge.resumeProducing()
    run_clock(clock, graph)
    out = io.StringIO()
    graph.report(out)
    assert out.getvalue().splitlines() == [
        "collector 'slow': 2 chunks, finished",
        "collector 'fast': 10 chunks, finished",
        "samples -> slow: dropped 8 chunks (drop_oldest)"]
    assert slow.finished


def test_run_threads_puts_the_compute_on_a_pool_with_the_serial_output(tmp_path, monkeypatch,
                                                                      capsys):
    """run --threads 2 sends the FFT and calibration to a pool of 2 threads, the reactor's one of them, in groups of 8 calls and every sink gets the chunks of the serial run; --threads 0 is refused."""
    from pyrf_blocks.parallel import ThreadPool, _run_group

    path = write(tmp_path, """\
        version: 1
        blocks:
          iq:
            type: simulated_instrument
            params: {model: WSA4000, seed: 3, count: 24, paced: false,
                     tones: [[1MHz, -30dBm]]}
          fft: {type: fft_block, inputs: [iq], params: {size: 512}}
          cal: {type: calibrate_block, inputs: [fft]}
          hold: {type: max_hold, inputs: [cal]}
          spectra: {type: collector, inputs: [cal]}
          held: {type: collector, inputs: [hold]}
        """)
    graphs, sent = [], []
    real_run, real_send = Graph.run, ThreadPool.send

    def run(graph, *args, **kwargs):
        graphs.append(graph)
        return real_run(graph, *args, **kwargs)

    def send(pool, function, args, deliver):
        # (a group of calls, ThreadPool(batch=), counts as its calls)
        calls = args[0] if function is _run_group else [(function, args)]
        sent.extend((pool.workers, function) for function, _ in calls)
        return real_send(pool, function, args, deliver)

    monkeypatch.setattr(Graph, "run", run)
    monkeypatch.setattr(ThreadPool, "send", send)
    assert main(["run", path]) == 0
    assert not sent and graphs[0].parallel is None
    assert main(["run", path, "--threads", "2"]) == 0
    assert isinstance(graphs[1].parallel, ThreadPool) and graphs[1].parallel.workers == 2
    assert graphs[1].parallel.batch == 8 and graphs[1].parallel.caller_runs
    assert len(sent) >= 24 and {workers for workers, _ in sent} == {2}
    for name in ("spectra", "held"):
        serial, threaded = (graph.blocks[name].chunks for graph in graphs)
        assert len(serial) == 24 and len(threaded) == 24
        for want, got in zip(serial, threaded):
            np.testing.assert_array_equal(got.data, want.data)
            assert (got.start, got.end, got.seq, got.meta) == (want.start, want.end, want.seq,
                                                                want.meta)
    capsys.readouterr()
    with pytest.raises(SystemExit):
        main(["run", path, "--threads", "0"])
    assert "--threads: '0' must be at least 1" in capsys.readouterr().err


def test_run_refuses_more_threads_than_a_pool_takes_at_once(tmp_path, capsys):
    """run --threads 100000 is refused by the argument's check, in one line, before any thread starts (it took half a minute to fail, starting threads); the bound is the pools' own."""
    from pyrf_blocks.commands.run import MAX_THREADS
    from pyrf_blocks.parallel import MAX_WORKERS

    assert MAX_THREADS == MAX_WORKERS
    path = write(tmp_path, """\
        version: 1
        blocks:
          iq: {type: simulated_instrument, params: {count: 2, paced: false}}
          out: {type: collector, inputs: [iq]}
        """)
    threads = threading.active_count()
    for count in ("100000", str(MAX_WORKERS + 1)):
        with pytest.raises(SystemExit) as exited:
            main(["run", path, "--threads", count])
        assert exited.value.code == 2
        assert f"--threads: '{count}' must be at most {MAX_WORKERS}" in capsys.readouterr().err
    assert threading.active_count() == threads
