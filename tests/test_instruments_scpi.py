"""
The SCPI client on a StringTransport and a task.Clock: ordering, one query
in flight, timeouts, definite-length blocks and lost connections.
"""

import pytest
from twisted.internet import task
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.internet.error import ConnectionLost

from pyrf_blocks.instruments.scpi import (SCPIClient, SCPIConnectionLost, SCPIError,
                                          SCPITimeout, format_block)


def _client(timeout=2.0):
    clock = task.Clock()
    client = SCPIClient(clock, timeout=timeout)
    transport = StringTransport()
    client.makeConnection(transport)
    return client, transport, clock


def _result(deferred):
    outcome = []
    deferred.addBoth(outcome.append)
    assert outcome, "the Deferred has not fired"
    if isinstance(outcome[0], Failure):
        outcome[0].raiseException()
    return outcome[0]


def test_commands_are_written_in_order_and_fire_at_once():
    """Commands without a reply go straight out, one line each."""
    client, transport, _ = _client()
    first, second = client.command(":FREQ:CENT 2.4e9"), client.command("*RST")
    assert transport.value() == b":FREQ:CENT 2.4e9\n*RST\n"
    assert _result(first) is None and _result(second) is None


def test_only_one_query_is_in_flight():
    """Requests after a query wait for its reply before being written."""
    client, transport, _ = _client()
    idn = client.query("*IDN?")
    later = client.command(":TRACE:SPP 1024")
    lock = client.query(":SYST:LOCK:REQ? ACQ")
    assert transport.value() == b"*IDN?\n"
    transport.clear()
    client.dataReceived(b"ThinkRF,WSA5000,X1,1.0\r")
    assert not idn.called
    client.dataReceived(b"\n")
    assert _result(idn) == "ThinkRF,WSA5000,X1,1.0"
    assert _result(later) is None
    assert transport.value() == b":TRACE:SPP 1024\n:SYST:LOCK:REQ? ACQ\n"
    client.dataReceived(b"1\n")
    assert _result(lock) == "1"


def test_replies_split_and_joined_anywhere_reach_their_queries():
    """Two replies in one read, or one reply over many, go to the right queries."""
    client, transport, _ = _client()
    first, second = client.query("A?"), client.query("B?")
    client.dataReceived(b"1\n2")
    assert _result(first) == "1" and not second.called
    client.dataReceived(b"\n")
    assert _result(second) == "2"


def test_timeout_fails_the_query_with_a_clear_error_and_drops_the_connection():
    """No reply within the timeout: SCPITimeout naming the query, and a fresh start."""
    client, transport, clock = _client(timeout=2.0)
    waiting = client.query("*IDN?")
    queued = client.query("FREQ:CENT?")
    clock.advance(1.9)
    assert not waiting.called
    clock.advance(0.2)
    with pytest.raises(SCPITimeout, match=r"'\*IDN\?': no reply from .* within 2 s"):
        _result(waiting)
    assert transport.disconnecting
    client.connectionLost(Failure(ConnectionLost("closed")))
    with pytest.raises(SCPIConnectionLost, match="FREQ:CENT"):
        _result(queued)


def test_definite_length_block_split_across_reads():
    """#<n><length><bytes> is read whole, binary bytes and line ends included."""
    client, transport, _ = _client()
    payload = bytes(range(256)) + b"\n\r#"
    block = client.query_block(":TRACE:BLOCK?")
    text = client.query("*IDN?")
    wire = format_block(payload) + b"\n" + b"ThinkRF\n"
    for index in range(0, len(wire), 7):
        client.dataReceived(wire[index:index + 7])
    assert _result(block) == payload
    assert _result(text) == "ThinkRF"


def test_format_block_states_its_length():
    """format_block writes the digit count, then the length, then the bytes."""
    assert format_block(b"hello") == b"#15hello"
    assert format_block(b"x" * 12) == b"#212" + b"x" * 12


@pytest.mark.parametrize("wire, message", [
    (b"1234\n", "expected a '#' block"),
    (b"#0abc\n", "only definite-length blocks"),
    (b"#2x5abc", "is not a number"),
    (b"#9999999999", "exceeds the"),
])
def test_malformed_blocks_fail_the_query_clearly(wire, message):
    """A reply that is not a definite-length block fails with the reason."""
    client, transport, _ = _client()
    block = client.query_block("DATA?")
    client.dataReceived(wire)
    with pytest.raises(SCPIError, match=message):
        _result(block)
    assert transport.disconnecting


def test_requests_after_the_connection_closed_fail_at_once():
    """Nothing waits forever on a closed connection."""
    client, transport, _ = _client()
    client.connectionLost(Failure(ConnectionLost("gone")))
    with pytest.raises(SCPIConnectionLost, match="is closed"):
        _result(client.query("*IDN?"))


def test_unsolicited_bytes_are_ignored():
    """Bytes arriving with no query waiting do not answer the next query."""
    client, transport, _ = _client()
    client.dataReceived(b"stale\n")
    query = client.query("*IDN?")
    client.dataReceived(b"fresh\n")
    assert _result(query) == "fresh"
