"""
Tests for the ``pyrf-blocks`` command line, run as a real subprocess.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def cli(*args, timeout=60):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-m", "pyrf_blocks.cli", *args], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=timeout)


def test_demo_prints_the_simulated_tones():
    """The demo finds both simulated tones at their frequencies (MHz) and levels (dBm)."""
    result = cli("demo", "--duration", "0.5", "--fast")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "peaks after" in lines[0]
    first, second = lines[2].split(), lines[3].split()
    assert float(first[1]) == pytest.approx(2401.0, abs=0.008)
    assert float(first[3]) == pytest.approx(-20.0, abs=0.5)
    assert float(second[1]) == pytest.approx(2397.5, abs=0.008)
    assert float(second[3]) == pytest.approx(-45.0, abs=0.5)


def test_the_demo_runs_for_its_duration_of_device_time_paced_or_fast():
    """--duration is device time: the instrument's stream ends after the chunk reaching it, so a paced run and a --fast one print the same peaks (before, --fast ran for wall-clock time and "--duration 0.3" printed peaks "after 0.034 s")."""
    paced = cli("demo", "--duration", "0.3")
    fast = cli("demo", "--duration", "0.3", "--fast")
    assert paced.returncode == fast.returncode == 0, paced.stderr + fast.stderr
    assert paced.stdout == fast.stdout
    assert paced.stdout.startswith("peaks after 0.302 s ")  # 144 chunks of 16 Ki samples


def test_demo_options_change_the_signal():
    """--center-mhz and --tone move the reported peak."""
    result = cli("demo", "--duration", "0.2", "--fast", "--center-mhz", "915",
                 "--tone", "0.5", "-33", "--peaks", "1")
    assert result.returncode == 0, result.stderr
    peak = result.stdout.splitlines()[2].split()
    assert float(peak[1]) == pytest.approx(915.5, abs=0.008)
    assert float(peak[3]) == pytest.approx(-33.0, abs=0.5)


def test_the_demo_runs_its_graph_optimised(fusions_made, capsys):
    """The demo's graph is optimised as pyrf-blocks run's is (the hold takes the FFT's extreme and calibrates it), and run as written with --no-optimise."""
    from pyrf_blocks.cli import main

    for flags in ((), ("--no-optimise",)):
        assert main(["demo", "--duration", "0.5", "--fast", *flags]) == 0
        assert fusions_made == [["hold_of_calibration", "hold_of_spectra"]]
        strongest = capsys.readouterr().out.splitlines()[2].split()
        assert float(strongest[1]) == pytest.approx(2401.0, abs=0.008)


def test_help_explains_every_demo_option():
    """--help documents each option of the demo."""
    result = cli("demo", "--help")
    assert result.returncode == 0
    for option in ("--duration", "--center-mhz", "--rate-msps", "--tone", "--fft-size",
                   "--window", "--peaks", "--seed", "--fast", "--no-optimise"):
        assert option in result.stdout


@pytest.mark.parametrize("args, reason", [
    (["demo", "--fft-size", "0"], "argument --fft-size: fft_block: size: must be at least 8, got"),
    (["demo", "--fft-size", "3"], "argument --fft-size: fft_block: size: must be at least 8, got"),
    (["demo", "--window", "kaiser"], "'kaiser:8.6'"),
    (["demo", "--duration", "soon"], "is not a number"),
    (["demo", "--window", "squiggle"], "get_window"),
    (["demo", "--window", "kaiser:1e308"], "window ('kaiser', 1e+308): its values are not "
                                           "finite"),
    (["demo", "--bogus"], "unrecognized arguments"),
    (["nosuchcommand"], "invalid choice"),
    # Values the argument's own check lets through and the instrument refuses
    # (a traceback before), in the option's unit (in Hz before).
    (["demo", "--rate-msps", "1e9"], "demo: error: --rate-msps 1e+09: the sample rate of the "
                                     "simulated instrument is 0.001 to 10000 MSa/s"),
    (["demo", "--rate-msps", "1e-9"], "demo: error: --rate-msps 1e-09: the sample rate of the "
                                      "simulated instrument is 0.001 to 10000 MSa/s"),
    (["demo", "--center-mhz", "1e12"], "demo: error: --center-mhz 1e+12: the centre frequency "
                                       "of the simulated instrument is 0 to 1e+06 MHz"),
    (["demo", "--center-mhz", "inf"], "argument --center-mhz: 'inf' is not a finite number"),
    (["demo", "--tone", "nan", "-20"], "argument --tone: 'nan' is not a finite number"),
    # (before: taken, and never shown: the instrument captures -rate/2 <= offset < rate/2)
    (["demo", "--rate-msps", "10", "--tone", "5", "-20"],
     "demo: error: --tone 5 -20: the offset must be at least -5 and less than 5 MHz, within "
     "the 10 MHz span"),
])
def test_bad_option_exits_2_with_one_line(args, reason):
    """A bad option or value exits 2 with a one-line reason and no traceback."""
    result = cli(*args)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and reason in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args, reason", [
    (["demo", "--center-mhz", "1e15"],
     "pyrf-blocks demo: error: --center-mhz 1e+15: the centre frequency of the simulated "
     "instrument is 0 to 1e+06 MHz"),
    (["record", "sim", "-o", "x", "--samples", "1", "--center-mhz", "1e15"],
     "pyrf-blocks record: --center-mhz 1e+15: the centre frequency of the simulated "
     "instrument is 0 to 1e+06 MHz"),
    (["record", "192.0.2.1", "-o", "x", "--samples", "1", "--center-mhz", "1e15"],
     "pyrf-blocks record: --center-mhz 1e+15: the centre frequency of a WSA5000 is 50 to "
     "27000 MHz"),
    (["record", "192.0.2.1", "-o", "x", "--samples", "1", "--model", "R5500",
      "--center-mhz", "0.001"],
     "pyrf-blocks record: --center-mhz 0.001: the centre frequency of an R5500 is 0.009 to "
     "27000 MHz"),
    (["view", "--headless", "--duration", "1", "--center-mhz", "1e15"],
     "pyrf-blocks view: error: --center-mhz 1e+15: the centre frequency of the simulated "
     "instrument is 0 to 1e+06 MHz"),
    (["view", "--headless", "--duration", "1", "192.0.2.1", "--model", "WSA4000",
      "--center-mhz", "1e15"],
     "pyrf-blocks view: error: --center-mhz 1e+15: the centre frequency of a WSA4000 is 0 to "
     "10000 MHz"),
    (["emulate", "--center-mhz", "1e15"],
     "pyrf-blocks emulate: error: --center-mhz 1e+15: the centre frequency of a WSA5000 is 50 "
     "to 27000 MHz"),
    (["emulate", "--tone", "-1", "-20"],
     "pyrf-blocks emulate: error: --tone -1 -20: the frequency must be at least 0 MHz"),
])
def test_an_option_in_mhz_is_refused_in_mhz_naming_it(capsys, monkeypatch, tmp_path, args,
                                                       reason):
    """--center-mhz (--rate-msps, --tone) out of the instrument's range: exit 2, one line in MHz naming the option (before: "centre frequency 1e+21 Hz")."""
    from pyrf_blocks.cli import main
    for command in ("record", "emulate"):  # (their stderr logging: see test_instruments_cli)
        monkeypatch.setattr(f"pyrf_blocks.commands.{command}.log_warnings_to_stderr",
                            lambda **_: None)
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.splitlines() == [reason]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args, reason", [
    (["record", "sim", "-o", "x", "--samples", "1", "--decimation", "3"],
     "pyrf-blocks record: --decimation 3: a WSA5000 takes 1 (none) or a power of two from 4 "
     "to 1024"),
    (["record", "sim", "-o", "x", "--samples", "1", "--model", "WSA4000", "--decimation",
      "1024"],
     "pyrf-blocks record: --decimation 1024: a WSA4000 takes 1 (none) or a whole number from "
     "4 to 1023"),
    (["record", "192.0.2.1", "-o", "x", "--samples", "1", "--model", "R5500",
      "--decimation", "6"],
     "pyrf-blocks record: --decimation 6: an R5500 takes 1 (none) or a power of two from 4 "
     "to 1024"),
])
def test_a_decimation_the_family_lacks_is_refused_listing_those_it_takes(
        capsys, monkeypatch, tmp_path, args, reason):
    """record --decimation that the --model's analyzers (and so the emulator) do not take, for the simulated instrument too: exit 2, one line naming the option and listing the factors, no file (before: sim recorded at 125/3 MSa/s)."""
    from pyrf_blocks.cli import main
    monkeypatch.setattr("pyrf_blocks.commands.record.log_warnings_to_stderr", lambda **_: None)
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    assert capsys.readouterr().err.splitlines() == [reason]
    assert list(tmp_path.iterdir()) == []


# Every failure exits non-zero, in one line, and never hangs.

def one_line(result):
    """The single line a failed command printed on stderr (no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("args, reason", [
    (["--max-body", "99999999999999"], "--max-body must be a whole number of bytes from 1 to "
                                       "67108864, got 99999999999999"),
    (["--request-deadline", "1e30"], "--request-deadline must be more than 0 and less than "
                                     "1e+06 seconds, got 1e+30"),
    (["--lease", "0"], "--lease must be more than 0"),
    (["--max-blocks", "100001"], "--max-blocks must be a whole number from 1 to 100000, got "
                                 "100001"),
    (["--max-streams", "99999999999999"], "--max-streams must be a whole number from 1 to "
                                          "100000, got 99999999999999"),
    (["--max-blocks", "0"], "error: argument --max-blocks: '0' must be at least 1"),
    (["--max-streams", "2.5"], "error: argument --max-streams: '2.5' is not a whole number"),
])
def test_a_worker_limit_out_of_range_exits_2_naming_its_range(args, reason):
    """--max-body above 64 MiB (no limit at all, in effect), --max-blocks or --max-streams out of 1 to 100000, and times out of (0, 1e6) s: one line naming the range, exit 2 (a time above the range was called not positive; the counts had no option)."""
    result = cli("worker", *args, timeout=30)
    assert result.returncode == 2
    assert one_line(result).startswith(f"pyrf-blocks worker: {reason}")


@pytest.mark.parametrize("args, reason", [
    (["discover", "--address", "127.0.0.1", "--wait", "1e30"],
     "pyrf-blocks discover: --wait must be more than 0 and less than 60 seconds, got 1e+30"),
    (["discover", "--address", "127.0.0.1", "--wait", "60"],
     "pyrf-blocks discover: --wait must be more than 0 and less than 60 seconds, got 60.0"),
    (["emulate", "--scpi-port", "0", "--duration", "1e30"],
     "pyrf-blocks emulate: error: --duration must be more than 0 and less than 1e+06 "
     "seconds, got 1e+30"),
])
@pytest.mark.timeout(30)  # (before: discover waited 1e30 s, and the emulator ran as long)
def test_discover_wait_and_emulate_duration_are_bounded(capsys, monkeypatch, args, reason):
    """discover --wait beyond a minute and emulate --duration beyond 1e6 s: one line naming the range, exit 2, before anything listens (before: taken at their word)."""
    from pyrf_blocks.cli import main
    monkeypatch.setattr("pyrf_blocks.commands.emulate.log_warnings_to_stderr", lambda: None)
    assert main(args) == 2
    assert capsys.readouterr().err.splitlines() == [reason]


@pytest.mark.parametrize("args", [
    (["view", "--headless", "--duration", "1e30"],
     "pyrf-blocks view: error: --duration must be more than 0 and less than 1e+06 seconds, "
     "got 1e+30"),
    (["demo", "--fast", "--duration", "1e6"],
     "pyrf-blocks demo: error: --duration must be more than 0 and less than 1e+06 seconds, "
     "got 1000000.0"),
    # (a closed port: the old code failed there, exit 1, instead of recording for ever)
    (["record", "127.0.0.1", "--scpi-port", "1", "-o", "x", "--quiet", "--duration", "1e30"],
     "pyrf-blocks record: --duration must be more than 0 and less than 1e+06 seconds, "
     "got 1e+30"),
], ids=["view", "demo", "record"])
@pytest.mark.timeout(30)  # (before: view and demo ran 1e30 and 1e6 s)
def test_view_demo_and_record_durations_are_bounded(capsys, monkeypatch, tmp_path, args):
    """view, demo and record --duration of 1e6 s or more: one line naming the range, exit 2, before anything runs or connects (before: taken at their word)."""
    from pyrf_blocks.cli import main
    for command in ("record", "view"):
        monkeypatch.setattr(f"pyrf_blocks.commands.{command}.log_warnings_to_stderr",
                            lambda **_: None)
    monkeypatch.chdir(tmp_path)
    args, reason = args
    assert main(args) == 2
    assert capsys.readouterr().err.splitlines() == [reason]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("args", [["discover", "--wait", "inf"], ["discover", "--wait", "nan"],
                                  ["emulate", "--duration", "inf"],
                                  ["emulate", "--duration", "-1"],
                                  ["view", "--duration", "inf"], ["demo", "--duration", "nan"],
                                  ["record", "--duration", "-1", "sim", "-o", "x"]])
def test_times_that_are_not_finite_and_positive_are_refused_by_argparse(capsys, args):
    """inf, nan or a negative time: argparse's one line naming the option, exit 2."""
    from pyrf_blocks.cli import main
    with pytest.raises(SystemExit) as exit:
        main(args)
    assert exit.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"argument {args[1]}: {args[2]!r} " in err[0], err


def test_a_command_leaves_what_it_loaded_out_of_the_collections_at_exit():
    """After a command, the interpreter's finalization collects over what is new, not over the whole heap (0.3-0.5 s before)."""
    script = (
        "import atexit, gc, sys\n"
        "from pyrf_blocks.cli import main\n"
        "alive = []\n"
        "# (registered first, so it runs after what main registers)\n"
        "atexit.register(lambda: print(alive[0], len(gc.get_objects())))\n"
        "try:\n"
        "    main(['demo', '--bogus'])\n"
        "finally:\n"
        "    alive.append(len(gc.get_objects()))\n")
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    alive, walked = map(int, result.stdout.split())
    assert alive > 30_000  # numpy, twisted, the commands...
    assert walked < alive / 20


@pytest.mark.timeout(60)
def test_a_worker_on_a_busy_port_exits_1_at_once():
    """worker on a port in use says so in one line and exits 1 (before the fix: it hung)."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("worker", "--listen", f"tcp:{port}:interface=127.0.0.1", timeout=30)
    assert result.returncode == 1
    assert one_line(result).startswith(f"pyrf-blocks worker: cannot listen on tcp:{port}:")


@pytest.mark.parametrize("listen, reason", [
    ("nonsense", "'nonsense' is not an endpoint to listen on: it must start with tcp:"),
    ("tcp:http", "'tcp:http': the port must be a number from 0 to 65535, got 'http'"),
    ("tcp:8750:interface=lab-a", "interface 'lab-a' is not an IP address"),
])
def test_a_listen_address_that_is_not_one_is_named(capsys, monkeypatch, listen, reason):
    """worker --listen with a malformed endpoint names it (before: 'without a token')."""
    from pyrf_blocks.cli import main
    monkeypatch.delenv("PYRF_BLOCKS_TOKEN", raising=False)
    assert main(["worker", "--listen", listen]) == 2
    err = capsys.readouterr().err
    assert reason in err and "token" not in err and len(err.splitlines()) == 1


@pytest.mark.timeout(60)
def test_discover_of_an_unknown_host_exits_1_in_one_line():
    """discover --address with a name that does not resolve: one line, exit 1, no hang."""
    result = cli("discover", "--address", "no-such-host.invalid", timeout=30)
    assert result.returncode == 1
    assert one_line(result) == ("pyrf-blocks discover: cannot send a discovery query to "
                                "'no-such-host.invalid': no IPv4 address has that name")


@pytest.mark.parametrize("span, decimation, model", [
    ("125", 1, "WSA5000"), ("50", 1, "WSA5000"), ("31.25", 4, "WSA5000"), ("20", 4, "WSA5000"),
    ("1", 64, "WSA5000"), ("0.1", 1024, "WSA5000"), ("0.1", 512, "WSA4000")])
def test_a_span_becomes_a_decimation_the_analyzer_supports(span, decimation, model):
    """view --span-mhz picks the largest power-of-two decimation of the --model family keeping the span (a WSA4000 stops at 1023)."""
    from pyrf_blocks.cli import build_parser
    from pyrf_blocks.commands.view import decimation_for
    args = build_parser().parse_args(["view", "--model", model, "--span-mhz", span])
    assert decimation_for(args) == decimation  # (50 MHz gave 2, which no WSA takes)


@pytest.mark.parametrize("model, decimation", [("WSA5000", 1024), ("WSA4000", 5),
                                               ("R5500", 512)])
def test_a_decimation_is_checked_against_the_model_asked_for(model, decimation):
    """view --decimation takes what the --model family takes (a WSA4000 any whole number to 1023, the others powers of two to 1024)."""
    from pyrf_blocks.cli import build_parser
    from pyrf_blocks.commands.view import decimation_for
    args = build_parser().parse_args(["view", "--model", model, "--decimation", str(decimation)])
    assert decimation_for(args) == decimation


@pytest.mark.parametrize("rbw_khz", ["0.0281", "0.1", "28.76", "1000", "1840"])
def test_an_rbw_becomes_the_shortest_fft_that_resolves_it(rbw_khz):
    """view --rbw-khz within the range the FFTs of 16 to 1 Mi points give: the shortest power-of-two FFT whose RBW is at most that."""
    from pyrf_blocks.cli import build_parser
    from pyrf_blocks.commands.view import fft_size_for
    from pyrf_blocks.numerics.spectral import window_gains
    args = build_parser().parse_args(["view", "--rbw-khz", rbw_khz])
    rate, asked = 7.8125e6, float(rbw_khz) * 1e3

    def rbw(size):
        return window_gains(args.window, size)[1] * rate / size
    size = fft_size_for(args, rate)
    assert size & (size - 1) == 0 and 16 <= size <= 1 << 20
    assert rbw(size) <= asked and (size == 16 or rbw(size // 2) > asked)


@pytest.mark.parametrize("window", ["flattop", "hann", "kaiser:8.6"])
@pytest.mark.parametrize("rate", [125e6, 7.8125e6, 125e6 / 1000])
def test_the_rbw_range_a_refusal_shows_is_accepted_at_both_ends(window, rate):
    """The RBWs an --rbw-khz refusal names (rounded to 4 digits) are themselves accepted: typing back the range's ends works."""
    import re

    from pyrf_blocks.cli import build_parser
    from pyrf_blocks.commands.view import fft_size_for

    def size_for(rbw_khz):
        return fft_size_for(build_parser().parse_args(
            ["view", "--window", window, "--rbw-khz", rbw_khz]), rate)
    with pytest.raises(ValueError) as refused:
        size_for("1e-9")
    finest, coarsest = re.search(r"the RBW is (\S+) to (\S+) kHz", str(refused.value)).groups()
    assert size_for(finest) == 1 << 20
    assert size_for(coarsest) in (16, 32)  # (a hair finer than 16 points give: maybe 32)
    with pytest.raises(ValueError, match=re.escape(f"the RBW is {finest} to {coarsest} kHz")):
        size_for("1e9")


def test_commands_run_in_turn_in_one_process_log_each_event_once(capsys):
    """Each command's stderr logging replaces the last one's: an event is written once, not once per command run before."""
    from twisted.logger import Logger

    from pyrf_blocks.commands.options import log_to_stderr, log_warnings_to_stderr

    for _ in range(3):
        log_warnings_to_stderr()
        log_to_stderr("info")
        log_warnings_to_stderr(failures_reported=True)
    capsys.readouterr()  # what was logged before the first command, if this one was it
    Logger(namespace="pyrf_blocks.test").warn("late rows {count}", count=7)
    assert capsys.readouterr().err.count("late rows 7") == 1


# Help texts taken from docstrings.

#: reST markup that must not reach a terminal: roles, ``literals``, `links`_.
MARKUP = r":[\w:.-]+:`|``|`[^`\n]+`_|^\s*\.\. [\w-]+::"


def test_every_commands_help_reads_as_plain_text():
    """No subcommand's --help shows Sphinx roles, ``literals`` or directives: the docstrings are turned into plain text."""
    import argparse
    import re

    from pyrf_blocks.cli import COMMANDS, build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    helps = {name: subparsers.choices[name].format_help() for name in COMMANDS}
    helps["pyrf-blocks"] = parser.format_help()
    marked = {name: re.findall(MARKUP, text, re.M) for name, text in helps.items()}
    assert not {name: found for name, found in marked.items() if found}
    run = helps["run"]
    assert "(ThreadPool)" in run and "(pyrf_blocks.optimise)" in run and "pipelines:" in run


def test_run_help_in_a_terminal_reads_as_plain_text():
    """pyrf-blocks run --help, as a user runs it, names ThreadPool without its Sphinx role."""
    result = cli("run", "--help")
    assert result.returncode == 0, result.stderr
    assert "(ThreadPool)" in result.stdout and ":class:" not in result.stdout


@pytest.mark.parametrize("doc, text", [
    (":class:`~pyrf_blocks.parallel.ThreadPool`", "ThreadPool"),
    (":mod:`pyrf_blocks.optimise`", "pyrf_blocks.optimise"),
    (":func:`~pyrf_blocks.numerics.fft.power_spectrum`", "power_spectrum()"),
    (":meth:`Block.emit`", "Block.emit()"),
    (":doc:`the cluster <concepts/cluster>`", "the cluster"),
    ("``pipelines:`` and ``run``", "pipelines: and run"),
    ("see `etcd`_ or `Twisted <https://twisted.org>`__", "see etcd or Twisted"),
    ("*only* **once**; *.yaml and *.yml", "only once; *.yaml and *.yml"),
    ("For example::\n\n    run x", "For example:\n\n    run x"),
    ("Run it:\n\n.. code-block:: console\n\n    $ run x\n", "Run it:\n\n    $ run x\n"),
])
def test_plain_text_of_a_docstring(doc, text):
    """plain_text drops reST markup and keeps the words, as Sphinx would show them."""
    from pyrf_blocks.commands import plain_text

    assert plain_text(doc) == text


def test_plain_text_fills_a_paragraph_that_lost_markup_again():
    """A prose paragraph whose roles were shortened is filled to its widest line; lists and untouched paragraphs keep their lines."""
    from pyrf_blocks.commands import plain_text

    doc = ("one two three four five six seven eight\n(:class:`~a.b.Pool`): nine.  Ten\n"
           "eleven.\n\nkept  as\nit is\n\n- a ``list``\n- kept\n")
    assert plain_text(doc) == ("one two three four five six seven eight\n(Pool): nine.  Ten "
                               "eleven.\n\nkept  as\nit is\n\n- a list\n- kept\n")
