"""
The wire format of a stream that crosses a process or host boundary.

A stream is read with ``GET /streams/{id}?after={seq}&wait={seconds}``.
The body of a ``200`` answer is the chunks with ``seq > after``, encoded
back to back by :func:`~pyrf_blocks.chunk.encode_chunks` (one msgpack map
per chunk, its array as a raw little-endian buffer).  ``204`` means nothing
arrived within ``wait`` seconds.  The headers say what the body holds, so a
client can route it before decoding a byte.  ``after`` is the
acknowledgement: the server forgets every chunk up to it, and keeps the
rest until a later request acknowledges them.

A chunk's ``seq`` is its producing output's own (``Output.next_seq`` when
it was emitted), kept across any number of processes, so a cursor means
the same chunk on every worker that serves that output; a gap is a drop.

Every answer about a stream carries its *instance*, a random id drawn when
the stream was opened: a stream id names a stream only on the worker that
made it, and a worker started again on the same port counts its ids from 1
again.  A reader that finds another instance than the one its stream was
opened with is reading someone else's stream, and stops.
"""

from dataclasses import dataclass

__all__ = ["CONTENT_TYPE", "JSON_TYPE", "KIND", "FIRST_SEQ", "LAST_SEQ",
           "START_SEQ", "MISSED", "DROPPED", "END", "INSTANCE", "StreamHeaders", "stream_headers",
           "read_stream_headers"]

#: Content type of a body of chunks.
CONTENT_TYPE = b"application/x-pyrf-chunks+msgpack"
#: Content type of control answers and of every error.
JSON_TYPE = b"application/json"

#: Kind of every chunk of the stream (``iq``, ``spectrum``...).
KIND = b"X-Pyrf-Kind"
#: ``seq`` of the first and of the last chunk in the body (a lingering
#: answer, whose last chunk is not known when it starts, has no last).
FIRST_SEQ = b"X-Pyrf-First-Seq"
LAST_SEQ = b"X-Pyrf-Last-Seq"
#: ``seq`` of the first chunk the stream received: where the block's
#: output was when the stream was opened (absent until it received one).
#: A reader without a cursor counts gaps from there, not from 0.
START_SEQ = b"X-Pyrf-Start-Seq"
#: Chunks newer than the poll's ``after`` that the stream never held: the
#: cursor is older than the stream's start (a reader resuming on a worker
#: that took the block over, or on a new stream).  Absent when none.
MISSED = b"X-Pyrf-Missed"
#: Chunks the producing side has dropped from this stream so far (only
#: ``drop_oldest`` and ``latest`` streams ever drop).
DROPPED = b"X-Pyrf-Dropped"
#: ``1`` when the producer has ended its stream and this answer carries the
#: last chunks (or none): the client stops polling.
END = b"X-Pyrf-End"
#: The stream's instance: random, drawn when the stream was opened, on
#: every answer of ``GET /streams/{id}`` (errors included).
INSTANCE = b"X-Pyrf-Stream-Instance"


@dataclass(frozen=True, slots=True)
class StreamHeaders:
    """
    What the headers of one stream answer say.
    """

    kind: str
    first_seq: int
    last_seq: int
    dropped: int
    ended: bool
    start_seq: int = None
    missed: int = 0
    instance: str = None


def stream_headers(kind, first_seq, last_seq, dropped, ended, start_seq=None, missed=0,
                   instance=None):
    """
    The headers of a stream answer, as ``{name: value}`` bytes.
    """
    headers = {KIND: kind.encode("ascii"), DROPPED: b"%d" % dropped,
               END: b"1" if ended else b"0"}
    if instance is not None:
        headers[INSTANCE] = instance.encode("ascii")
    if first_seq is not None:
        headers[FIRST_SEQ] = b"%d" % first_seq
    if last_seq is not None:
        headers[LAST_SEQ] = b"%d" % last_seq
    if start_seq is not None:
        headers[START_SEQ] = b"%d" % start_seq
    if missed:
        headers[MISSED] = b"%d" % missed
    return headers


def _one(headers, name):
    values = headers.getRawHeaders(name)
    return values[-1] if values else None


def _integer(headers, name):
    value = _one(headers, name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"header {name.decode()} is not an integer: {value!r}") from None


def read_stream_headers(headers):
    """
    Read the stream headers of a response (``twisted.web.http_headers.Headers``).
    """
    kind = _one(headers, KIND)
    return StreamHeaders(
        kind=kind.decode("ascii", "replace") if kind is not None else None,
        first_seq=_integer(headers, FIRST_SEQ),
        last_seq=_integer(headers, LAST_SEQ),
        dropped=_integer(headers, DROPPED) or 0,
        ended=_one(headers, END) == b"1",
        start_seq=_integer(headers, START_SEQ),
        missed=_integer(headers, MISSED) or 0,
        instance=_text(headers, INSTANCE),
    )


def _text(headers, name):
    value = _one(headers, name)
    return None if value is None else value.decode("ascii", "replace")
