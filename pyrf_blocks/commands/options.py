"""
Argument types shared by the subcommands: each rejects a bad value with a
message that names the range it accepts.
"""

import argparse
import math
import os

__all__ = ["positive_float", "finite_float", "check_tuning", "SCALED_OPTIONS", "check_decimation",
           "decimations_text", "check_tones", "positive_int",
           "window_name", "fft_size", "duration", "port_number", "add_window_argument",
           "simulated_tones", "simulated_tones_text",
           "log_warnings_to_stderr", "one_line_failures", "TOKEN_VARIABLE",
           "add_token_arguments", "token_from", "broker_address", "add_mqtt_arguments"]

#: Environment variable that may hold a worker's bearer token.
TOKEN_VARIABLE = "PYRF_BLOCKS_TOKEN"


def finite_float(text):
    """
    A number, not ``inf`` nor ``nan``.
    """
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def positive_float(text):
    """
    A finite number greater than 0.
    """
    value = finite_float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be greater than 0")
    return value


#: Options given in a multiple of the unit their block parameter takes:
#: option → (parameter, unit of the option, Hz or Sa/s in one of it).
SCALED_OPTIONS = {"--center-mhz": ("center_frequency", "MHz", 1e6),
                  "--rate-msps": ("sample_rate", "MSa/s", 1e6)}


def check_tuning(args, model, host):
    """
    Check the options of :data:`SCALED_OPTIONS` that ``args`` has against
    what the source for ``model`` at ``host`` accepts (see
    :func:`~pyrf_blocks.instruments.tuning_limits`), before it is made:
    ``ValueError`` naming the option and speaking its unit (the block
    would speak Hz, its own unit, to its own callers).
    """
    from ..instruments import tuning_limits

    who, limits = tuning_limits(model, host)
    for option, (parameter, unit, scale) in SCALED_OPTIONS.items():
        value = getattr(args, option[2:].replace("-", "_"), None)
        if value is None:
            continue
        low, high = (bound / scale for bound in limits[parameter])
        if not low <= value <= high:
            what = parameter.replace("_", " ").replace("center", "centre")
            raise ValueError(f"{option} {value:g}: the {what} of {who} is "
                             f"{low:g} to {high:g} {unit}")


def check_decimation(decimation, model):
    """
    ``ValueError`` naming ``--decimation`` and the factors the analyzer
    family ``model`` takes (its :class:`~pyrf_blocks.instruments.models.Model`'s
    ``decimations``, which the analyzer, the emulator and
    :class:`~pyrf_blocks.instruments.wsa.thinkrf_analyzer` hold to) when
    ``decimation`` is not one of them.  Checked for the simulated
    instrument too, which stands in for the family (its sample rate, any
    number, would take a decimation no analyzer has).
    """
    from ..instruments import tuning_limits
    from ..instruments.models import model_of

    family = model_of(model)
    if decimation not in family.decimations:
        who, _ = tuning_limits(model, None)
        raise ValueError(f"--decimation {decimation}: {who} takes "
                         f"{family.describe_decimations()}")


def decimations_text():
    """
    What each analyzer family takes for ``--decimation``, for a ``--help``
    (from the families' own :class:`~pyrf_blocks.instruments.models.Model`).
    """
    from ..instruments.models import MODELS

    return "; ".join(f"{name} {model.describe_decimations()}" for name, model in MODELS.items())


def check_tones(args, sample_rate):
    """
    ``ValueError`` naming the first ``--tone OFFSET_MHZ DBM`` of ``args``
    outside the band that a simulated instrument sampling at
    ``sample_rate`` (Sa/s) captures (:func:`~pyrf_blocks.numerics.signals.in_band`,
    the rule the instrument applies): such a tone never shows, as behind an
    analyzer's anti-alias filter.
    """
    from ..numerics.signals import in_band

    half = sample_rate / 2e6
    for offset, level in args.tone or ():
        if not in_band(offset * 1e6, sample_rate):
            raise ValueError(f"--tone {offset:g} {level:g}: the offset must be at least "
                             f"{-half:.10g} and less than {half:.10g} MHz, within the "
                             f"{2 * half:.10g} MHz span")


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} must be at least 1")
    return value


def window_name(text):
    """
    An FFT window: a ``scipy.signal.get_window`` name, with its parameters
    after colons for the windows that take some (``kaiser:8.6``).
    """
    from ..numerics.spectral import window
    try:
        window(text, 16)
    except ValueError as error:
        if ":" in text or "needs its parameter" in str(error):
            # (parameters that are not numbers, or out of the window's range)
            raise argparse.ArgumentTypeError(str(error)) from None
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a scipy.signal.get_window name (e.g. hann, hamming, "
            "blackmanharris, flattop, kaiser:8.6)") from None
    return text


def fft_size(text):
    """
    An FFT length, checked by :class:`~pyrf_blocks.blocks.dsp.fft_block`'s
    own rule for ``size``.
    """
    from ..blocks.dsp import fft_block
    from ..params import check_params
    try:
        size = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    try:
        return check_params(fft_block, {"size": size}, strict=False)["size"]
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def port_number(text):
    """
    A TCP/UDP port, 0 (any free port) to 65535.
    """
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0..65535)")
    return value


def log_warnings_to_stderr(failures_reported=False):
    """
    Show Twisted log events of level warning and above on stderr (lost
    connections, reconnections, malformed packets), each in one line:
    see :func:`one_line_failures`.

    :param failures_reported: the command reports a failed graph itself
        (in its last line), so the graph's own log of it is left out.
    """
    import sys

    from twisted.logger import (FilteringLogObserver, LogLevel, LogLevelFilterPredicate,
                                textFileLogObserver)

    predicate = LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)
    observer = one_line_failures(textFileLogObserver(sys.stderr), failures_reported)
    _log_to([FilteringLogObserver(observer, [predicate])])


def _expected_errors():
    from twisted.internet.error import ConnectError

    from ..errors import InstrumentError, RemoteError, SCPIError, UnknownBlockType
    return (OSError, ValueError, ConnectError, InstrumentError, RemoteError, SCPIError,
            UnknownBlockType)


def one_line_failures(observer, failures_reported=False):
    """
    A log observer that passes events to ``observer``, except that a
    failure a user can cause (an unreachable host, a refused value: an
    ``OSError``, a ``ValueError``, an error of :mod:`pyrf_blocks.errors`)
    is written as one line, its message after the event's text, without
    the traceback that is kept for bugs.  With ``failures_reported``, such
    a failure of a block, as the graph logs it, is left out: the command
    reports it when its run ends.
    """
    from twisted.logger import formatEvent

    expected = _expected_errors()

    def observe(event):
        failure = event.get("log_failure")
        if failure is not None and failure.check(*expected):
            if failures_reported and event.get("log_namespace") == "pyrf_blocks.graph":
                return
            text = formatEvent(event)
            event = dict(event, log_format="{text}: {error}", text=text,
                         error=f"{failure.type.__name__}: {failure.getErrorMessage()}")
            del event["log_failure"]
        observer(event)
    return observe


def duration(text):
    """
    A positive duration such as ``10s``, ``5m``, ``250ms`` or ``2.5``
    (seconds); returns seconds.
    """
    from ..errors import UnitError
    from ..units import parse_quantity
    try:
        value = parse_quantity(text, "s", "duration")
    except UnitError as error:
        raise argparse.ArgumentTypeError(str(error).removeprefix("duration: ")) from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text!r} must be longer than 0 s")
    return value


def add_token_arguments(parser, what):
    """
    ``--token`` and ``--token-file`` (one or the other) for ``what``.
    """
    tokens = parser.add_mutually_exclusive_group()
    tokens.add_argument("--token", help=f"{what} (default: ${TOKEN_VARIABLE})")
    tokens.add_argument("--token-file", metavar="PATH",
                        help="read the bearer token from the first line of PATH")


def token_from(args):
    """
    The token the options of :func:`add_token_arguments` give, else the
    environment's; ``ValueError`` naming a token file that cannot be read.
    """
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as file:
                return file.readline().strip() or None
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or str(error)
            raise ValueError(f"--token-file {args.token_file}: {reason}") from None
    return args.token or os.environ.get(TOKEN_VARIABLE) or None


class _WindowOption(argparse.Action):
    """
    ``--window NAME``, checked by :func:`window_name` when it is given.

    Not as ``type=``: argparse passes a string default through ``type`` as
    well, and checking the default window imports scipy.signal (1.2 s on
    the 2-core machine) in every run, one that needs no window (``view`` of
    a worker's spectrum) or stops at a mistyped option included.
    """

    def __call__(self, parser, namespace, values, option_string=None):
        try:
            setattr(namespace, self.dest, window_name(values))
        except argparse.ArgumentTypeError as error:
            raise argparse.ArgumentError(self, str(error)) from None


def add_window_argument(parser):
    """
    ``--window``, with the one default of :data:`pyrf_blocks.defaults.WINDOW`.
    """
    from .. import defaults
    parser.add_argument("--window", action=_WindowOption, default=defaults.WINDOW,
                        help=f"FFT window, any scipy.signal.get_window name, with its "
                             "parameters after colons for those that take some "
                             f"(kaiser:8.6) (default {defaults.WINDOW}: tones between "
                             "bins read their level within 0.02 dB; hann can read up "
                             "to 1.42 dB low)")


def simulated_tones(args):
    """
    The ``--tone OFFSET_MHZ DBM`` options as ``(offset_hz, level_dbm)``
    pairs, or :data:`pyrf_blocks.defaults.SIMULATED_TONES` when none is given.
    """
    from .. import defaults
    if args.tone:
        return [(offset * 1e6, level) for offset, level in args.tone]
    return defaults.SIMULATED_TONES


def simulated_tones_text():
    """
    The default tones in words, for ``--tone``'s help.
    """
    from .. import defaults
    return " and ".join(f"{offset / 1e6:+g} MHz at {level:g} dBm"
                        for offset, level in defaults.SIMULATED_TONES)


def add_cluster_arguments(parser, required=True):
    """``--cluster URL`` and ``--cluster-ca FILE``: the etcd a cluster coordinates on."""
    parser.add_argument("--cluster", required=required, default=None, metavar="URL",
                        help="client URL of the cluster's etcd, e.g. http://127.0.0.1:2379")
    parser.add_argument("--cluster-ca", default=None, metavar="FILE",
                        help="CA certificate (PEM) that an https:// etcd's certificate "
                             "must be signed by (default: the system's authorities)")


def add_import_argument(parser, help):
    """``--import MODULE`` (repeatable): the user's modules that register block types."""
    parser.add_argument("--import", dest="imports", action="append", default=[],
                        metavar="MODULE", help=help)


def import_modules(modules):
    """
    Import the user's ``modules`` in order.

    :raises ValueError: naming the first that fails to import, and why.
    """
    import importlib

    for module in modules:
        try:
            importlib.import_module(module)
        except Exception as error:  # the user's module: say which and why
            raise ValueError(f"cannot import {module!r}: "
                             f"{type(error).__name__}: {error}") from None


def add_log_level_argument(parser):
    """``--log-level``, for :func:`log_to_stderr`."""
    parser.add_argument("--log-level", choices=("debug", "info", "warn", "error"),
                        default="info",
                        help="least important events logged to stderr (default info)")


def log_to_stderr(level):
    """Show Twisted log events of ``level`` (a name) and above on stderr."""
    import sys

    from twisted.logger import (FilteringLogObserver, LogLevel, LogLevelFilterPredicate,
                                textFileLogObserver)

    predicate = LogLevelFilterPredicate(LogLevel.levelWithName(level))
    _log_to([FilteringLogObserver(textFileLogObserver(sys.stderr), [predicate])])


#: The observers the last command of this process logs to.
_command_observers = []


def _log_to(observers):
    # A command logs through the observers of the last command run in this
    # process, never through those of every command before it: Twisted's
    # beginLoggingTo adds observers each time it is called, so a process
    # that ran commands in turn (a test session, a notebook) formatted each
    # event once per earlier command.
    from twisted.logger import globalLogBeginner, globalLogPublisher

    if _command_observers:
        for observer in _command_observers:
            globalLogPublisher.removeObserver(observer)
        for observer in observers:
            globalLogPublisher.addObserver(observer)
    else:
        globalLogBeginner.beginLoggingTo(observers, redirectStandardIO=False)
    _command_observers[:] = observers


def broker_address(text):
    """
    ``(host, port)`` of ``--broker``: ``HOST:PORT`` or ``mqtt://HOST:PORT``;
    ValueError naming the option and how to write it.
    """
    from ..blocks.mqtt import parse_broker

    try:
        return parse_broker(text)
    except ValueError as error:
        raise ValueError(f"--broker {error}") from None


def add_mqtt_arguments(parser, what):
    """
    --broker, --store, --client-id and --mqtt: where the sensor pipelines
    that ``what`` runs take their messages and keep their rows.
    """
    parser.add_argument("--broker", default="127.0.0.1:1883", metavar="HOST:PORT",
                        help=f"MQTT broker of {what} (default 127.0.0.1:1883)")
    parser.add_argument("--store", default="sensors.db", metavar="URL",
                        help=f"store of {what}: sqlite:PATH (or a path; default "
                             "sensors.db), postgresql://..., or memory:")
    parser.add_argument("--client-id", default="pyrf-blocks",
                        help="MQTT client id: the persistent session's name")
    parser.add_argument("--mqtt", choices=("5", "3.1.1"), default="5",
                        help="MQTT version (default 5; 3.1.1 costs less CPU per message "
                             "but needs the broker's max_inflight_messages at least every "
                             "pipeline's max_items)")
