"""
Every exception that pyrf_blocks raises for a caller to catch, in one place.

The modules that raise them import them from here (and some still offer
them under their old names, ``pyrf_blocks.net.RemoteError`` for one), so a
caller may write ``from pyrf_blocks.errors import RemoteError`` whatever
part of the package the error comes from.  This module imports nothing
else of the package, nor anything heavy: importing an error never loads
the network or the GUI.

Their base classes say which built-in handlers catch them: a malformed
value is a ``ValueError``, a name that is not registered a ``LookupError``,
a connection that cannot be made a ``ConnectionError``.
"""

import difflib

__all__ = [
    # Data
    "ChunkDecodeError", "VRTError",
    # Composing graphs
    "UnknownBlockType", "ParameterError",
    # Instruments
    "InstrumentError", "InstrumentConnectionError", "SCPIError", "SCPITimeout",
    "SCPIConnectionLost",
    # Across processes and hosts
    "RemoteError", "WorkerUnreachable", "SchedulerUnreachable", "TLSError", "HTTPError",
    # The cluster
    "CoordinatorError", "Fenced",
    "UnknownCalculation", "NoCalculationState",  # (seed 001's calculations on a worker)
    # Pipeline files
    "PipelineError", "FieldError", "UnitError", "ExportError",
    # Commands and the GUI
    "SourceError", "ReactorMismatch", "ReplayError",
    # Formulas
    "FormulaError", "FormulaTimeout",
    # Storage and sensor pipelines
    "StoreUnavailable", "PayloadRejected", "MQTTError",
]


# Data.

class ChunkDecodeError(ValueError):
    """
    Bytes that do not hold a well-formed chunk.
    """


class VRTError(ValueError):
    """
    Bytes that are not a well-formed packet of the supported subset.
    """


# Composing graphs.

class UnknownBlockType(LookupError):
    """
    A block type name that is not registered.

    :param name: the name asked for.
    :param known: the registered names, to suggest the closest one.
    """

    def __init__(self, name, known=()):
        self.name = name
        close = difflib.get_close_matches(str(name), list(known), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown block type {name!r}{hint}")

    def __str__(self):
        return self.args[0]


class ParameterError(ValueError):
    """
    Parameters a block type refuses (a Python call, a pipeline file, a
    worker request): ``problems`` lists ``(parameter, message)``, each
    message starting with the parameter's name.

    :param block: how the message names the block (``"fft_block"``, or
        ``"fft_block 'fft'"``).
    """

    def __init__(self, block, problems):
        self.block = block
        self.problems = list(problems)
        super().__init__(f"{block}: " + "; ".join(message for _, message in self.problems))

    @property
    def parameters(self):
        """
        The names of the parameters refused.
        """
        return [name for name, _ in self.problems]


# Instruments.

class InstrumentError(RuntimeError):
    """
    The instrument refused what the source asked of it.
    """


class InstrumentConnectionError(ConnectionError):
    """
    The instrument could not be reached, or the connection was lost and
    could not be made again.
    """


class SCPIError(Exception):
    """
    The instrument's reply could not be used (malformed, too large, or
    the instrument reported an error).
    """


class SCPITimeout(SCPIError):
    """
    No reply within the timeout.
    """


class SCPIConnectionLost(SCPIError):
    """
    The connection closed before a request was answered.
    """


# Across processes and hosts.

class RemoteError(RuntimeError):
    """
    A worker refused a request or reported a failure.
    """


class WorkerUnreachable(RemoteError):
    """
    A worker did not answer, retries included.
    """


class SchedulerUnreachable(ConnectionError):
    """
    No Dask scheduler answered at the address given, within the time
    given.
    """


class TLSError(RemoteError):
    """
    A TLS connection to a worker failed: its certificate did not verify,
    was issued for another host, or the worker does not speak TLS.
    """


class HTTPError(Exception):
    """
    A request the worker refuses: ``code`` and a message for the caller
    (the worker answers it as ``{"error": message}`` with that status).
    """

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


# The cluster.

class CoordinatorError(ConnectionError):
    """
    The coordinator (etcd) could not be reached or refused a request.
    """


class Fenced(RuntimeError):
    """
    A write carried the revision of an assignment that has since moved: the
    writer no longer owns its computation (its lease expired while it was
    paused or cut off) and must stop.

    :param computation: what was written for.
    :param revision: the revision the writer held.
    :param current: the newest revision the store has seen.
    """

    def __init__(self, computation, revision, current):
        self.computation, self.revision, self.current = computation, revision, current
        super().__init__(
            f"{computation}: write refused, its assignment revision {revision} is older "
            f"than {current} (another worker owns it now)")


class UnknownCalculation(LookupError):
    """
    No calculation of that name is registered
    (:mod:`pyrf_blocks.calculations`); a worker answers 404.
    """


class NoCalculationState(LookupError):
    """
    A calculation service keeps no state for that variable (never given,
    or forgotten); a worker answers 409, and the caller rebuilds it with
    ``process_state``.
    """


# Pipeline files.

class PipelineError(ValueError):
    """
    A pipeline file that cannot be used; ``problems`` lists every mistake
    found, in file order.
    """

    def __init__(self, problems):
        self.problems = sorted(problems, key=lambda p: (p.line, p.column))
        super().__init__("\n".join(str(p) for p in self.problems))


class FieldError(ValueError):
    """
    A mistake in one field of a mapping, raised where pydantic only knows
    the mapping: ``field`` lets the message point at that field's line.
    """

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field


class UnitError(ValueError):
    """
    A value that is not a quantity of the expected unit.  The message names
    the field and the accepted units.
    """


class ExportError(ValueError):
    """
    A graph that a pipeline file cannot describe (an unregistered block
    type, a parameter value YAML cannot hold).
    """


# Commands and the GUI.

class SourceError(ValueError):
    """
    The SOURCE of ``pyrf-blocks view`` cannot be opened.
    """


class ReactorMismatch(RuntimeError):
    """
    Another reactor was installed before the Qt loop could be, or none was
    installed on it where a window needs it.
    """


class ReplayError(RuntimeError):
    """
    A block failed while a pipeline replayed a recording; the message (one
    line) names the recording, the block and its error.
    """


# Formulas.

class FormulaError(ValueError):
    """
    A formula that cannot be evaluated safely: bad syntax, an unknown name
    or function, a construct outside the allowed subset, or one too large.
    The message quotes the formula and gives the column (from 1) of the
    mistake; ``column`` holds it too (``None`` when the whole text is at
    fault).
    """

    def __init__(self, message, column=None):
        super().__init__(message)
        self.column = column


class FormulaTimeout(RuntimeError):
    """
    A formula's evaluation ran past its time limit.
    """
# Storage and sensor pipelines.

class StoreUnavailable(ConnectionError):
    """
    The database of a store cannot be reached (a server stopped, a file
    that cannot be written); what was being written was not written and
    may be written again.
    """


class PayloadRejected(ValueError):
    """
    A payload a sensor pipeline cannot take (a number that is not one, an
    image that does not decode, a payload over the size limit): counted as
    a bad payload of its topic under ``reason``, never fatal.

    :param reason: a short word: ``type``, ``encoding``, ``image``,
        ``size``, ``transform``.
    :param detail: a sentence naming the value.
    """

    def __init__(self, reason, detail):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class MQTTError(ValueError):
    """
    A malformed MQTT packet, from a broker or about to be sent (a string
    or packet over MQTT's limits); the connection is dropped and made again.
    """
