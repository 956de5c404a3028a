"""
The viewer in real processes, offscreen: ``pyrf-blocks view``, the shared
Qt/Twisted loop while no data arrives, and the example scripts.
"""

import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from pyrf_blocks.cli import main

pytest.importorskip("pyqtgraph.Qt", reason="the viewer needs the gui extra "
                    "(pyqtgraph, PySide6-Essentials) and Qt's system libraries")

ROOT = Path(__file__).resolve().parents[1]


def run(*argv, timeout=90):
    env = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen")
    return subprocess.run([sys.executable, *argv], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def view(*argv):
    return run("-m", "pyrf_blocks.cli", "view", *argv)


def peak_line(stdout):
    match = re.search(r"peak ([\d.]+) MHz at (-?[\d.]+) dBm", stdout)
    assert match, stdout
    return float(match.group(1)), float(match.group(2))


def test_view_opens_the_window_saves_a_screenshot_and_quits(tmp_path):
    """view --duration --screenshot runs the real loop, writes the PNG and reports the tone."""
    png = tmp_path / "view.png"
    result = view("--decimation", "32", "--center-mhz", "900", "--duration", "1.5",
                  "--screenshot", str(png))
    assert result.returncode == 0, result.stderr
    frequency, level = peak_line(result.stdout)
    assert frequency == pytest.approx(901.0, abs=0.002)
    assert level == pytest.approx(-20.0, abs=0.5)  # 0.14 bin off-centre: 0.1 dB of scalloping
    assert png.stat().st_size > 10_000
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_view_headless_needs_no_window():
    """view --headless keeps the traces without Qt and reports the strongest peak."""
    result = view("--headless", "--duration", "1", "--decimation", "64",
                  "--tone", "0.25", "-30", "--fft-size", "500")
    assert result.returncode == 0, result.stderr
    frequency, level = peak_line(result.stdout)
    assert frequency == pytest.approx(2400.25, abs=0.004)  # bin width 3.9 kHz
    assert level == pytest.approx(-30.0, abs=0.5)  # 0.25 MHz is on a bin


def test_view_help_documents_the_controls(capsys):
    """--help names the source kinds and every live control."""
    with pytest.raises(SystemExit) as exit:
        main(["view", "--help"])
    assert exit.value.code == 0
    out = capsys.readouterr().out
    for text in ("SOURCE", "http://HOST:PORT/blocks/NAME", "--center-mhz", "--span-mhz",
                 "--decimation", "--rbw-khz", "--fft-size", "--ref-level", "--window",
                 "--db-per-div", "--screenshot", "--headless"):
        assert text in out, text


@pytest.mark.parametrize("argv, message", [
    (("--fft-size", "0"), "fft_block: size: must be at least 8, got 0"),
    (("--window", "nonsense"), "'nonsense' is not a scipy.signal.get_window name"),
    (("--traces", "live,peak"), "choose among live, average, max_hold, min_hold"),
    (("--span-mhz", "3", "--decimation", "4"), "not allowed with argument"),
    (("--headless",), "--headless and --screenshot need --duration"),
    (("--fft-size", "3"), "fft_block: size: must be at least 8, got 3"),
    (("--window", "kaiser"), "window 'kaiser' needs its parameter(s) after a colon, as in "
                             "'kaiser:8.6'"),
    (("--headless", "--duration", "1", "--span-mhz", "500"),
     "--span-mhz 500: the widest span of a WSA5000 is 125 MHz (decimation 1)"),
    (("--headless", "--duration", "1", "--decimation", "2"),
     "pyrf-blocks view: error: --decimation 2: a WSA5000 takes 1 (none) or a power of two "
     "from 4 to 1024"),
    # (before: checked against a WSA4000 whatever --model said)
    (("--headless", "--duration", "1", "--model", "WSA4000", "--decimation", "1024"),
     "pyrf-blocks view: error: --decimation 1024: a WSA4000 takes 1 (none) or a whole number "
     "from 4 to 1023"),
    (("--headless", "--duration", "1", "--decimation", "5"),
     "pyrf-blocks view: error: --decimation 5: a WSA5000 takes 1 (none) or a power of two "
     "from 4 to 1024"),
    # (before: the tone, outside the band the instrument captures, never showed; the
    # RBW was taken from the nearest FFT of 16 to 1048576 points)
    (("--headless", "--duration", "1", "--tone", "1e9", "-20"),
     "pyrf-blocks view: error: --tone 1e+09 -20: the offset must be at least -3.90625 and "
     "less than 3.90625 MHz, within the 7.8125 MHz span"),
    (("--headless", "--duration", "1", "--decimation", "64", "--tone", "0.9765625", "-20"),
     "pyrf-blocks view: error: --tone 0.976562 -20: the offset must be at least -0.9765625 "
     "and less than 0.9765625 MHz, within the 1.953125 MHz span"),
    (("--headless", "--duration", "1", "--rbw-khz", "1e-9"),
     "pyrf-blocks view: error: --rbw-khz 1e-09: with a 7.8125 MHz span and the flattop "
     "window the RBW is 0.0281 to 1840 kHz (FFTs of 16 to 1048576 points)"),
    (("--headless", "--duration", "1", "--span-mhz", "1", "--window", "hann", "--rbw-khz",
      "5000"),
     "pyrf-blocks view: error: --rbw-khz 5000: with a 1.953125 MHz span and the hann window "
     "the RBW is 0.002794 to 183.1 kHz (FFTs of 16 to 1048576 points)"),
    (("--duration", "1", "--screenshot", "/nonexistent-folder/view.png"),
     "--screenshot /nonexistent-folder/view.png: folder /nonexistent-folder does not exist"),
])
def test_bad_options_exit_2_with_one_line(capsys, argv, message):
    """A bad option or value exits 2 with a single line naming it, before anything opens."""
    try:
        status = main(["view", *argv])
    except SystemExit as exit:
        status = exit.code
    assert status == 2
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1


def test_view_of_an_unreachable_analyzer_or_worker_exits_1():
    """An analyzer or a worker never reached (a closed loopback port): one line naming its address, exit 1, at once rather than when --duration ends."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # SCPI port 37001: closed.  Never reached, the analyzer fails at once,
    # before --duration (before: retried, "no spectrum arrived ... in 1 s").
    analyzer = view("--headless", "--duration", "10", "127.0.0.1")
    assert analyzer.returncode == 1, analyzer.stderr
    assert analyzer.stderr.strip().splitlines() == [
        "pyrf-blocks view: thinkrf_analyzer: cannot connect to the SCPI "
        "port 127.0.0.1:37001: Connection was refused by other side: 111: Connection refused."]
    # A worker never reached, likewise (before: retried, a warning a retry, until
    # --duration ended: "was not reached before the graph stopped").
    worker = view("--headless", "--duration", "10", f"http://127.0.0.1:{port}/blocks/fft")
    assert worker.returncode == 1, worker.stderr
    assert worker.stderr.strip().splitlines() == [
        f"pyrf-blocks view: remote_block: cannot reach the worker http://127.0.0.1:{port}: "
        "Connection was refused by other side: 111: Connection refused."]
    assert "Traceback" not in analyzer.stderr + worker.stderr


def test_a_screenshot_that_cannot_be_written_fails_the_view_without_hanging():
    """--screenshot where no file can be made: the view still quits, exit 1, one reason."""
    result = view("--duration", "0.5", "--screenshot", "/proc/view.png")
    assert result.returncode == 1, result.stderr
    assert "pyrf-blocks view: --screenshot: could not write a PNG to '/proc/view.png'" in (
        result.stderr.splitlines())
    assert "Traceback" not in result.stderr


def test_the_loop_keeps_running_when_no_data_arrives():
    """With a silent source, Qt timers, reactor calls and display frames all keep going."""
    result = run(str(ROOT / "tests" / "gui_idle_loop.py"), "1")
    assert result.returncode == 0, result.stderr
    counts = dict(re.findall(r"(\w+) (\d+)", result.stdout))
    assert counts["chunks"] == "1"
    # 1 s at 20 Hz is 20 ticks each; a frozen loop would give 0 or 1.
    for name in ("qt", "reactor", "frames"):
        assert int(counts[name]) >= 5, result.stdout


@pytest.mark.chaos
def test_numba_kernels_then_a_window_never_crash_the_process(tmp_path):
    """Eight processes run numba's kernels under a window drawn offscreen: all exit 0."""
    pytest.importorskip("numba")
    env = dict(os.environ, PYTHONPATH=str(ROOT), QT_QPA_PLATFORM="offscreen")
    env.pop("PYRF_BLOCKS_KERNELS", None)  # the default: numba's where numba is installed
    script = str(ROOT / "tests" / "gui_kernels_then_window.py")
    png = tmp_path / "window.png"
    results = []
    for pair in range(4):  # two processes at a time; the first also takes a screenshot
        procs = [subprocess.Popen([sys.executable, script, *([str(png)] if pair == n == 0 else [])],
                                  cwd=ROOT, env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for n in range(2)]
        for proc in procs:
            out, err = proc.communicate(timeout=120)
            results.append((proc.returncode, out, err))
    # Before gui.loop closed the windows at exit, about one run in three
    # died here with SIGSEGV (-11), whichever kernels it used.
    crashed = [(code, err[-600:]) for code, out, err in results if code != 0]
    assert not crashed, f"{len(crashed)} of {len(results)} crashed: {crashed}"
    assert [out for _, out, _ in results] == ["numba True\n"] * len(results)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_reactor_installed_first_is_reported_with_the_fix():
    """If another reactor was installed before the Qt loop, install() says so and how to fix it."""
    code = ("from twisted.internet import reactor\n"
            "from pyrf_blocks.gui.loop import ReactorMismatch, install\n"
            "try:\n    install()\nexcept ReactorMismatch as error:\n    print(error)\n")
    result = run("-c", code)
    assert result.returncode == 0, result.stderr
    assert "needs Twisted on Qt's event loop" in result.stdout
    assert "before anything imports twisted.internet.reactor" in result.stdout


def test_view_reads_a_block_of_a_worker_that_needs_a_token(tmp_path):
    """view URL --token-file reads a real token-protected worker's spectra; without it, 401."""
    sys.path.insert(0, str(ROOT / "tests"))
    from net_real import RealWorker

    worker = RealWorker(token="view-test-token-0123456789")
    try:
        for spec in ({"type": "simulated_instrument", "name": "wsa",
                      "params": {"tones": [[1e6, -25.0]], "seed": 4}},
                     {"type": "fft_block", "name": "fft", "inputs": ["wsa"],
                      "params": {"window": "flattop"}},
                     {"type": "calibrate_block", "name": "dbm", "inputs": ["fft"]}):
            worker.json("POST", "/blocks", spec, expect=201)
        token_file = tmp_path / "token"
        token_file.write_text("view-test-token-0123456789\n")
        url = f"{worker.url}/blocks/dbm"
        result = view(url, "--headless", "--duration", "3", "--token-file", str(token_file))
        assert result.returncode == 0, result.stderr
        frequency, level = peak_line(result.stdout)
        assert frequency == pytest.approx(2401.0, abs=0.01)
        assert level == pytest.approx(-25.0, abs=0.5)
        refused = view(url, "--headless", "--duration", "3")
        assert refused.returncode != 0 and "401" in refused.stderr
    finally:
        worker.stop()
