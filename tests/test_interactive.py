"""
``run()`` again and again in one process (pyrf_blocks.reactor_thread): in
scripts, ``python -i``, with signals, failures and other threads; each
case in a real subprocess, since the global reactor runs once per process.
The notebook is run by tests/test_docs.py.
"""

import signal
import subprocess
import sys
import threading

import pytest
from twisted.internet.task import Clock

from pyrf_blocks import Graph, calibrate_block, collector, fft_block, simulated_instrument
from net_real import ROOT, environment, read_line, wait_gone


def as_in_a_terminal():
    # A job started in the background by a non-interactive shell inherits
    # SIGINT ignored; a user's foreground command does not.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def python(*argv, **options):
    """A subprocess running this checkout's Python code."""
    return subprocess.Popen([sys.executable, *argv], cwd=ROOT,
                            env=options.pop("env", None) or environment(),
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, preexec_fn=as_in_a_terminal, **options)


def finish(proc, timeout=60):
    """The child's stdout and stderr once it has exited (killed after ``timeout`` s)."""
    if proc.stdin is not None and proc.stdin.closed:
        proc.stdin = None  # communicate() would flush it
    try:
        out, err = proc.communicate(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return out.decode(), err.decode()


RECORD_THEN_REPLAY = """
import sys
import numpy as np
from pyrf_blocks import collector, record_block, run, sigmf_source, simulated_instrument
path = sys.argv[1]
wsa = simulated_instrument(paced=False, count=6, seed=9, samples_per_packet=512,
                           packets_per_block=4)
kept = collector(wsa)
recorder = record_block(wsa, path)
run()
replayed = collector(sigmf_source(path, chunk_size=1000))
run()
np.testing.assert_array_equal(replayed.data(), kept.data())
print(len(kept.chunks), recorder.samples_written, replayed.data().size)
"""


def test_a_script_records_then_replays_with_two_runs(tmp_path):
    """One script records to SigMF in one run() and replays the same samples in the next."""
    proc = python("-c", RECORD_THEN_REPLAY, str(tmp_path / "capture"))
    out, err = finish(proc)
    assert proc.returncode == 0, err[-3000:]
    assert out.split() == ["6", str(6 * 2048), str(6 * 2048)]


STATEMENTS = """\
from pyrf_blocks import collector, default_graph, run, simulated_instrument
first = collector(simulated_instrument(paced=False, count=3))
run()
second = collector(simulated_instrument(paced=False, count=4))
run()
print("runs", len(first.chunks), len(second.chunks), flush=True)
live = collector(simulated_instrument(sample_rate=1e6), keep=1)
_ = default_graph().reactor.callLater(0.2, print, "running", flush=True)
run()
print("interrupted", live.finished, flush=True)
third = collector(simulated_instrument(paced=False, count=2))
run()
print("after", len(third.chunks), flush=True)
"""


def test_python_i_runs_again_and_ctrl_c_stops_a_run():
    """In python -i, runs follow one another; Ctrl-C ends a live run, and the next one runs."""
    proc = python("-i", "-q")
    proc.stdin.write(STATEMENTS.encode())
    proc.stdin.close()
    assert read_line(proc.stdout, 30) == "runs 3 4"
    assert read_line(proc.stdout, 30) == "running"
    proc.send_signal(signal.SIGINT)
    out, err = finish(proc)
    assert proc.returncode == 0, err[-3000:]
    assert out.split("\n")[:2] == ["interrupted True", "after 2"], out
    assert "Traceback" not in err, err[-3000:]


SIGNALLED = """
import sys
from pyrf_blocks import collector, default_graph, record_block, run, sigmf_source
from pyrf_blocks import simulated_instrument
path = sys.argv[1]
recorder = record_block(simulated_instrument(sample_rate=1e6), path)  # paced, endless
default_graph().reactor.callLater(0.2, print, "running", flush=True)
run()
print("stopped", recorder.finished, recorder.samples_written > 0, flush=True)
replayed = collector(sigmf_source(path))
run()
print("replayed", replayed.data().size == recorder.samples_written, flush=True)
"""


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT],
                         ids=["SIGTERM", "SIGINT"])
def test_a_signal_during_run_stops_the_graph_cleanly(tmp_path, signal_number):
    """SIGTERM or Ctrl-C during run(): the recorder flushes, run() returns, a later run works."""
    proc = python("-c", SIGNALLED, str(tmp_path / "live"))
    assert read_line(proc.stdout, 30) == "running"
    proc.send_signal(signal_number)
    out, err = finish(proc)
    assert proc.returncode == 0, err[-3000:]
    assert out.split("\n")[:2] == ["stopped True True", "replayed True"], out
    assert "Traceback" not in err, err[-3000:]
    assert (tmp_path / "live.sigmf-meta").exists()


STUBBORN = """
from pyrf_blocks import collector, default_graph, run
from pyrf_blocks.block import Source

class stubborn(Source):
    type_name = "stubborn"
    kind = "iq"

    def stopProducing(self):  # asked to stop, it never ends its stream
        print("asked to stop", flush=True)

collector(stubborn())
default_graph().reactor.callLater(0.2, print, "running", flush=True)
try:
    run()
except KeyboardInterrupt:
    print("gave up waiting", flush=True)
"""


@pytest.mark.parametrize("signal_number, status, last", [
    (signal.SIGINT, 0, "gave up waiting"), (signal.SIGTERM, 128 + signal.SIGTERM, "")],
    ids=["SIGINT", "SIGTERM"])
def test_a_second_signal_stops_waiting_for_a_graph_that_does_not_finish(
        signal_number, status, last):
    """A second Ctrl-C raises KeyboardInterrupt out of run(); a second SIGTERM exits 143."""
    proc = python("-c", STUBBORN)
    assert read_line(proc.stdout, 30) == "running"
    proc.send_signal(signal_number)
    assert read_line(proc.stdout, 30) == "asked to stop"
    proc.send_signal(signal_number)
    out, err = finish(proc)
    assert proc.returncode == status, err[-3000:]
    assert out.strip() == last


FAILURE = """
from pyrf_blocks import calibrate_block, collector, default_graph, fft_block, run
from pyrf_blocks import simulated_instrument
failed = default_graph()
collector(calibrate_block(calibrate_block(fft_block(simulated_instrument(paced=False)))))
try:
    run()
except ValueError as error:
    print("raised:", error, flush=True)
print("new default graph:", default_graph() is not failed, flush=True)
after = collector(simulated_instrument(paced=False, count=2))
run()
print("then", len(after.chunks), flush=True)
"""


def test_a_block_failure_is_raised_and_the_next_run_starts_afresh():
    """run() re-raises a block's exception; blocks made next join a new graph and run."""
    proc = python("-c", FAILURE)
    out, err = finish(proc)
    assert proc.returncode == 0, err[-3000:]
    lines = out.splitlines()
    assert lines[0].startswith("raised: calibrate_block 'calibrate_block1' needs linear"), out
    assert lines[1:] == ["new default graph: True", "then 2"]


OTHER_THREADS = """
import threading
from pyrf_blocks import collector, default_graph, run, simulated_instrument
graph = default_graph()
wsa = simulated_instrument(sample_rate=1e6)  # paced, endless
first = collector(wsa, keep=1)
seen = {}

def build():  # another thread, while the graph runs
    seen["sink"] = collector(wsa)
    seen["active"] = seen["sink"].active
    seen["made in"] = graph.in_reactor_thread(lambda: threading.current_thread().name)

def run_inside():
    try:
        run()
    except RuntimeError as error:
        seen["inside"] = str(error)

graph.reactor.callLater(0.2, lambda: threading.Thread(target=build).start())
graph.reactor.callLater(0.3, run_inside)
run(duration=1.0)
print(seen["active"], seen["made in"], len(seen["sink"].chunks) > 0, seen["sink"].finished)
print(seen["inside"])
"""


def test_blocks_made_by_another_thread_during_a_run_are_made_in_the_reactor_thread():
    """A sink made by another thread during a run is made in the reactor's thread and fed."""
    proc = python("-c", OTHER_THREADS)
    out, err = finish(proc)
    assert proc.returncode == 0, err[-3000:]
    made, inside = out.splitlines()
    assert made == "True pyrf_blocks reactor True True"
    assert "cannot be called from the reactor's own thread" in inside


CHILDREN = """
from pyrf_blocks import collector, fft_block, process, run, simulated_instrument
child = process()
first = collector(fft_block(simulated_instrument(paced=False, count=4), proc=child))
run()
second = collector(fft_block(simulated_instrument(paced=False, count=2), proc=child))
run(duration=30)
print(child.pid, len(first.chunks), len(second.chunks), flush=True)
"""


def test_a_child_serves_two_runs_and_is_let_go_at_exit():
    """A process() child runs blocks for two run() calls and is gone once the script exits."""
    proc = python("-c", CHILDREN)
    out, err = finish(proc, timeout=90)
    assert proc.returncode == 0, err[-3000:]
    pid, first, second = map(int, out.split())
    assert (first, second) == (4, 2)
    assert wait_gone(pid)


def test_on_a_clock_calls_stay_in_the_calling_thread():
    """Graph.in_reactor_thread is a direct call on a task.Clock; a sink is active at once."""
    graph = Graph(Clock())
    assert graph.in_reactor_thread(threading.get_ident) == threading.get_ident()
    sink = collector(simulated_instrument(graph=graph))
    assert sink.active


def test_a_window_without_the_qt_loop_says_how_to_install_it():
    """A window on the global reactor without gui.loop.install() fails, naming the fix."""
    pytest.importorskip("pyqtgraph.Qt", reason="needs the gui extra")
    from pyrf_blocks.gui import loop
    from pyrf_blocks.gui.display import spectrum_display

    graph = Graph()  # the global reactor, when it first needs one
    spectra = calibrate_block(fft_block(simulated_instrument(graph=graph)))
    reactor_before = sys.modules.get("twisted.internet.reactor")
    with pytest.raises(loop.ReactorMismatch) as raised:
        spectrum_display(spectra)
    assert "call pyrf_blocks.gui.loop.install() before building the graph" in str(raised.value)
    assert "headless=True" in str(raised.value)
    assert not loop.installed()  # the display installed nothing
    assert sys.modules.get("twisted.internet.reactor") is reactor_before
    assert graph.sinks == ()


QT_LOOP = """
import asyncio
from pyrf_blocks import calibrate_block, fft_block, run, simulated_instrument
from pyrf_blocks import spectrum_display
from pyrf_blocks.gui import loop
before = loop.installed()
print(before, loop.install() is loop.install(), loop.installed())
display = spectrum_display(calibrate_block(fft_block(simulated_instrument())))
run(duration=0.5)
print(display.frames > 0, loop.event_loop() is asyncio.get_event_loop(),
      type(loop.event_loop()).__module__.split(".")[0])
spectrum_display(calibrate_block(fft_block(simulated_instrument())))
try:
    run(duration=0.1)
except Exception as error:
    print(type(error).__name__, error)
"""


def test_the_qt_loop_is_installed_explicitly_and_runs_once():
    """install() puts the reactor on a qasync loop it keeps; a window graph runs once only."""
    pytest.importorskip("pyqtgraph.Qt", reason="needs the gui extra")
    proc = python("-c", QT_LOOP, env=environment(QT_QPA_PLATFORM="offscreen"))
    out, err = finish(proc)
    assert proc.returncode == 0, err[-3000:]
    installing, first, second = out.splitlines()
    assert installing == "False True True"  # installed once, by the explicit call
    assert first == "True True qasync"
    assert second.startswith("ReactorNotRestartable")
    assert "cannot run again (Qt's event loop" in second


def test_a_block_type_shows_its_constructor_signature():
    """help(), a notebook's ``fft_block?`` and Sphinx show the constructor's parameters."""
    import inspect

    assert str(inspect.signature(fft_block)) == (
        "(producer, size=1024, window='flattop', overlap=0, **kwargs)")  # defaults.WINDOW
    assert str(inspect.signature(collector)) == "(producer, keep=None, **kwargs)"


KERNEL_CELL = """\
live = collector(simulated_instrument(sample_rate=1e6), keep=1)
_ = default_graph().reactor.callLater(0.2, print, "running", flush=True)
run()
print("returned", live.finished)
again = collector(simulated_instrument(paced=False, count=2))
run()
print("again", len(again.chunks))
"""


def test_interrupting_a_jupyter_kernel_stops_a_run_and_the_cell_goes_on(monkeypatch):
    """In a real kernel an interrupt during run() stops the graph; run() returns, runs again."""
    from jupyter_client.manager import start_new_kernel

    monkeypatch.setenv("PYTHONPATH", environment()["PYTHONPATH"])
    manager, client = start_new_kernel(kernel_name="python3", cwd=str(ROOT))
    try:
        client.execute_interactive(
            "from pyrf_blocks import collector, default_graph, run, simulated_instrument",
            timeout=60)
        cell = client.execute(KERNEL_CELL)
        printed, error = [], None
        while True:
            message = client.get_iopub_msg(timeout=60)
            if message["parent_header"].get("msg_id") != cell:
                continue
            kind, content = message["msg_type"], message["content"]
            if kind == "stream":
                printed += content["text"].split()
                if printed == ["running"]:
                    manager.interrupt_kernel()
            elif kind == "error":
                error = content["ename"]
            elif kind == "status" and content["execution_state"] == "idle":
                break
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert error is None
    assert printed == ["running", "returned", "True", "again", "2"]


THREAD_POOL = """
import time
from twisted.internet import threads
from pyrf_blocks import collector, run, simulated_instrument
collector(simulated_instrument(paced=False, count=2))
run()
threads.deferToThread(time.sleep, 0.01)  # the reactor's pool, started from this thread
collector(simulated_instrument(paced=False, count=2))
run()
print("done", flush=True)
"""


def test_the_reactors_thread_pool_does_not_hold_up_the_exit():
    """A script that used the reactor's thread pool between runs still exits when it ends."""
    proc = python("-c", THREAD_POOL)
    out, err = finish(proc, timeout=30)
    assert proc.returncode == 0, err[-3000:]
    assert out == "done\n"
