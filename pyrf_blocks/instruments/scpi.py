"""
A SCPI client on Twisted: commands and queries over one TCP connection.

Requests go out one at a time, in the order they were made: a command
(no reply) is written as soon as no query is waiting for its reply, a
query waits for its reply before anything else is written.  Every query
has a timeout on the injected clock; a reply that never comes fails the
query with :class:`SCPITimeout` and drops the connection, because a late
reply would be taken for the next query's.  Replies are text lines or
IEEE-488.2 definite-length blocks (``#<digits><length><bytes>``).
"""

from collections import deque

from twisted.internet import defer, protocol
from twisted.logger import Logger

from ..errors import SCPIConnectionLost, SCPIError, SCPITimeout

__all__ = ["SCPIClient", "format_block", "SCPIClientFactory"]

log = Logger()

#: Longest text reply accepted, bytes.
MAX_LINE = 64 * 1024
#: Largest binary block accepted, bytes.
MAX_BLOCK = 64 * 1024 * 1024


def format_block(data):
    """
    ``data`` as an IEEE-488.2 definite-length block.
    """
    length = str(len(data)).encode()
    return b"#" + str(len(length)).encode() + length + bytes(data)


class _Request:
    __slots__ = ("command", "reply", "deferred", "timer")

    def __init__(self, command, reply):
        self.command = command
        self.reply = reply  # None (command), "text" or "block"
        self.deferred = defer.Deferred()
        self.timer = None


class SCPIClient(protocol.Protocol):
    """
    The client protocol.  Use :meth:`command`, :meth:`query` and
    :meth:`query_block`; each returns a Deferred.

    :param clock: the reactor (or a ``task.Clock``) for timeouts.
    :param timeout: seconds to wait for each reply.
    """

    def __init__(self, clock, timeout=5.0):
        self.clock = clock
        self.timeout = timeout
        self.peer = "instrument"
        self.connected_deferred = defer.Deferred()
        self._queue = deque()
        self._current = None
        self._buffer = b""
        self._closed = False

    def connectionMade(self):
        peer = self.transport.getPeer()
        self.peer = f"{getattr(peer, 'host', peer)}:{getattr(peer, 'port', '')}"
        self.connected_deferred.callback(self)

    # Requests.

    def command(self, command):
        """
        Send a command that has no reply; the Deferred fires once it is
        written.
        """
        return self._enqueue(command, None)

    def query(self, command):
        """
        Send a query; the Deferred fires with the reply line (str, without
        the line end).
        """
        return self._enqueue(command, "text")

    def query_block(self, command):
        """
        Send a query answered by a definite-length block; the Deferred
        fires with its bytes.
        """
        return self._enqueue(command, "block")

    def _enqueue(self, command, reply):
        request = _Request(command, reply)
        if self._closed:
            request.deferred.errback(SCPIConnectionLost(
                f"{command!r}: the connection to {self.peer} is closed"))
            return request.deferred
        self._queue.append(request)
        self._send_next()
        return request.deferred

    def _send_next(self):
        while self._current is None and self._queue and not self._closed:
            request = self._queue.popleft()
            self.transport.write(request.command.encode("ascii") + b"\n")
            if request.reply is None:
                request.deferred.callback(None)
                continue
            self._current = request
            request.timer = self.clock.callLater(self.timeout, self._timed_out, request)
            if self._buffer:
                self._parse()

    def _timed_out(self, request):
        request.timer = None
        self._current = None
        request.deferred.errback(SCPITimeout(
            f"{request.command!r}: no reply from {self.peer} within {self.timeout:g} s"))
        # A late reply would be read as the next query's: start afresh.
        self.transport.loseConnection()

    # Replies.

    def dataReceived(self, data):
        self._buffer += data
        self._parse()

    def _parse(self):
        while self._current is not None and self._buffer:
            request = self._current
            try:
                if request.reply == "block":
                    reply = self._take_block()
                else:
                    reply = self._take_line()
            except SCPIError as error:
                self._finish(request, error)
                self._buffer = b""
                self.transport.loseConnection()
                return
            if reply is None:
                return
            self._finish(request, reply)
        if self._current is None and self._buffer.strip():
            log.warn("SCPI: unexpected bytes from {peer} ignored: {data!r}",
                     peer=self.peer, data=self._buffer[:80])
            self._buffer = b""

    def _finish(self, request, outcome):
        self._current = None
        if request.timer is not None and request.timer.active():
            request.timer.cancel()
        request.timer = None
        if isinstance(outcome, Exception):
            request.deferred.errback(outcome)
        else:
            request.deferred.callback(outcome)
        self._send_next()

    def _take_line(self):
        end = self._buffer.find(b"\n")
        if end < 0:
            if len(self._buffer) > MAX_LINE:
                raise SCPIError(f"{self._current.command!r}: reply from {self.peer} "
                                f"longer than {MAX_LINE} bytes without a line end")
            return None
        line, self._buffer = self._buffer[:end], self._buffer[end + 1:]
        try:
            return line.rstrip(b"\r").decode("ascii")
        except UnicodeDecodeError:
            raise SCPIError(f"{self._current.command!r}: reply from {self.peer} is "
                            f"not ASCII text: {line[:40]!r}") from None

    def _take_block(self):
        buffer = self._buffer.lstrip()
        if not buffer:
            return None
        command = self._current.command
        if buffer[:1] != b"#":
            raise SCPIError(f"{command!r}: expected a '#' block from {self.peer}, "
                            f"got {buffer[:40]!r}")
        if len(buffer) < 2:
            return None
        digits = buffer[1:2]
        if not digits.isdigit() or digits == b"0":
            raise SCPIError(f"{command!r}: block from {self.peer} has length-digit "
                            f"count {digits!r}; only definite-length blocks "
                            "(#1..#9) are supported")
        count = int(digits)
        if len(buffer) < 2 + count:
            return None
        length_text = buffer[2:2 + count]
        if not length_text.isdigit():
            raise SCPIError(f"{command!r}: block length {length_text!r} from "
                            f"{self.peer} is not a number")
        length = int(length_text)
        if length > MAX_BLOCK:
            raise SCPIError(f"{command!r}: block of {length} bytes from {self.peer} "
                            f"exceeds the {MAX_BLOCK}-byte limit")
        start = 2 + count
        if len(buffer) < start + length:
            return None
        data = buffer[start:start + length]
        rest = buffer[start + length:]
        # The block may be followed by the message's line end.
        if rest[:2] == b"\r\n":
            rest = rest[2:]
        elif rest[:1] == b"\n":
            rest = rest[1:]
        self._buffer = rest
        return data

    # Connection.

    @property
    def is_open(self):
        return self.transport is not None and not self._closed

    def close(self):
        """
        Close the connection; requests still waiting fail.
        """
        if self.transport is not None and not self._closed:
            self.transport.loseConnection()

    def connectionLost(self, reason):
        self._closed = True
        pending = ([self._current] if self._current is not None else []) + list(self._queue)
        self._current = None
        self._queue.clear()
        for request in pending:
            if request.timer is not None and request.timer.active():
                request.timer.cancel()
            request.deferred.errback(SCPIConnectionLost(
                f"{request.command!r}: connection to {self.peer} lost before the "
                f"reply ({reason.getErrorMessage()})"))


class SCPIClientFactory(protocol.ClientFactory):
    """
    Makes one :class:`SCPIClient`; ``connected`` fires with it once the
    connection is up, or fails with the connection error.
    """

    def __init__(self, clock, timeout=5.0):
        self.clock = clock
        self.timeout = timeout
        self.connected = defer.Deferred()

    def buildProtocol(self, addr):
        client = SCPIClient(self.clock, self.timeout)
        client.factory = self
        client.connected_deferred.chainDeferred(self.connected)
        return client

    def clientConnectionFailed(self, connector, reason):
        if not self.connected.called:
            self.connected.errback(reason)
