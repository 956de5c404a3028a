"""
The discover, emulate and record commands as real processes on loopback.
"""

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _command(*args):
    return [sys.executable, "-m", "pyrf_blocks.cli", *args]


def _environment():
    return dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))


@pytest.fixture(scope="module")
def emulator():
    """An `emulate` process on free loopback ports; yields its ports."""
    process = subprocess.Popen(
        _command("emulate", "--scpi-port", "0", "--data-port", "0", "--discovery-port", "0",
                 "--model", "R5500", "--serial", "CLI-7", "--tone", "2401", "-30",
                 "--duration", "60"),
        cwd=ROOT, env=_environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        line = process.stdout.readline()
        match = re.search(r"scpi (\d+) data (\d+) discovery (\d+)", line)
        assert match, f"emulate printed {line!r}; stderr: {process.stderr.read()}"
        yield dict(zip(("scpi", "data", "discovery"), match.groups()))
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()
        process.stderr.close()


def _run(*args, timeout=60):
    return subprocess.run(_command(*args), cwd=ROOT, env=_environment(), capture_output=True,
                          text=True, timeout=timeout)


def test_discover_lists_the_emulator(emulator):
    """`discover` sent to the emulator's UDP port prints its model and serial."""
    result = _run("discover", "--address", "127.0.0.1", "--port", emulator["discovery"],
                  "--wait", "0.5")
    assert result.returncode == 0, result.stderr
    assert re.search(r"127\.0\.0\.1\s+R5500\s+CLI-7\s+1\.0\.0", result.stdout)


def test_record_writes_a_sigmf_recording(emulator, tmp_path):
    """`record` from the emulator writes the requested samples with their metadata."""
    output = tmp_path / "capture"
    result = _run("record", "127.0.0.1", "--model", "R5500", "--scpi-port", emulator["scpi"],
                  "--data-port", emulator["data"], "--output", str(output),
                  "--samples", "100000", "--decimation", "64")
    assert result.returncode == 0, result.stderr
    assert "recorded 100000 samples" in result.stdout
    assert "100%" in result.stderr  # the progress bar
    meta = json.loads((tmp_path / "capture.sigmf-meta").read_text())
    assert meta["global"]["core:sample_rate"] == 125e6 / 64
    assert meta["captures"][0]["core:frequency"] == 2.4e9
    assert meta["global"]["core:datatype"] == "cf32_le"  # the default: lossless for any input
    samples = np.fromfile(tmp_path / "capture.sigmf-data", "<f4")
    assert len(samples) == 2 * 100000


def test_bad_options_exit_2_with_one_line(capsys, monkeypatch):
    """A bad port or a missing limit is refused with a one-line reason and status 2."""
    from pyrf_blocks.cli import main

    with pytest.raises(SystemExit) as exit:
        main(["record", "127.0.0.1", "--output", "x", "--samples", "10",
              "--scpi-port", "70000"])
    error = capsys.readouterr().err
    assert exit.value.code == 2
    assert "is not a port number (0..65535)" in error and len(error.splitlines()) == 1
    with pytest.raises(SystemExit) as exit:
        main(["record", "127.0.0.1", "--output", "x"])
    assert exit.value.code == 2
    assert "one of the arguments --samples --duration" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit:
        main(["emulate", "--model", "FSW"])
    assert exit.value.code == 2
    capsys.readouterr()
    # (The first command of a process to log to stderr writes what other
    # tests logged before it.)
    monkeypatch.setattr("pyrf_blocks.commands.emulate.log_warnings_to_stderr", lambda: None)
    for args, reason in ((["--seed", "-1"], "seed must be a whole number at least 0"),
                         (["--reference-level", "1e30"], "reference level 1e+30 dBm"),
                         (["--model", "WSA5000", "--center-mhz", "10"],
                          "--center-mhz 10: the centre frequency of a WSA5000 is 50 to "
                          "27000 MHz")):
        assert main(["emulate", *args]) == 2
        error = capsys.readouterr().err
        assert error.startswith("pyrf-blocks emulate: error: ") and reason in error
        assert len(error.splitlines()) == 1


def _closed_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_record_from_an_unreachable_analyzer_fails_in_one_line_leaving_no_file(tmp_path):
    """A refused connection, never made: no retry, one failure line naming the address, exit 1, no empty file."""
    port = str(_closed_port())
    result = _run("record", "127.0.0.1", "--scpi-port", port, "--data-port", port,
                  "--output", str(tmp_path / "capture"), "--samples", "1000", "--quiet")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "Failure:" not in result.stderr
    assert "retry" not in result.stderr  # (before: 3 retries, 7 s, for an analyzer never reached)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("pyrf-blocks record: thinkrf_analyzer: "
                               f"cannot connect to the SCPI port 127.0.0.1:{port}: "
                               "Connection was refused"), lines
    assert list(tmp_path.iterdir()) == []  # before the fix: an empty capture.sigmf-data


def test_record_draws_no_progress_bar_before_a_connection_error(tmp_path):
    """Without --quiet, an analyzer never reached gives its one line and no progress bar (before: the bar at 0 %, drawn twice)."""
    port = str(_closed_port())
    result = _run("record", "127.0.0.1", "--scpi-port", port, "--data-port", port,
                  "--output", str(tmp_path / "capture"), "--samples", "1000")
    assert result.returncode == 1
    assert "%" not in result.stderr and "\r" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"pyrf-blocks record: thinkrf_analyzer: cannot connect to the SCPI port 127.0.0.1:{port}"
    ), lines


def test_record_into_a_missing_folder_is_refused(tmp_path):
    """record --output in a folder that does not exist: one line, exit 2, nothing created."""
    result = _run("record", "sim", "--output", str(tmp_path / "typo" / "capture"),
                  "--samples", "1000", "--quiet")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"pyrf-blocks record: record_block: path '{tmp_path / 'typo' / 'capture'}': "
        f"folder '{tmp_path / 'typo'}' does not exist (create it first)"]
    assert list(tmp_path.iterdir()) == []


def test_record_help_explains_every_option():
    """record --help says what each option is for, the model and the ports included."""
    result = _run("record", "--help")
    assert result.returncode == 0
    for option, words in (("--model", "analyzer family"), ("--center-mhz", "centre frequency"),
                          ("--scpi-port", "SCPI"), ("--data-port", "VITA-49"),
                          ("--samples-per-packet", "VRT packet"),
                          ("--decimation", "power of two")):
        entry = result.stdout[result.stdout.index(f"  {option}"):]
        entry = entry[:entry.index("\n  -", 3)] if "\n  -" in entry[3:] else entry
        assert words in " ".join(entry.split()), (option, entry)
