"""
The producing side of a cross-process edge: long polls on a served stream,
driven through treq's StubTreq on a task.Clock.
"""

import json

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.web.iweb import UNKNOWN_LENGTH
from twisted.web.test.requesthelper import DummyRequest

from pyrf_blocks.chunk import decode_chunks
from pyrf_blocks.net import wire
from pyrf_blocks.net.stream import IDLE_TIMEOUT, ServedStream
from pyrf_blocks.testing import WorkerPair, manual_source



def open_stream(pair, block="src", **spec):
    status, _, body = pair.call("POST", f"/blocks/{block}/streams", json=spec)
    assert status == 201, body
    return json.loads(body)["path"]


def header(headers, name):
    return headers.getRawHeaders(name)[0]


@pytest.fixture
def pair():
    return WorkerPair()


@pytest.fixture
def source(pair):
    return manual_source(graph=pair.server, name="src")


def test_poll_is_held_until_a_chunk_arrives(pair, source):
    """A poll with nothing newer waits, then answers with the chunk and its headers."""
    path = open_stream(pair)
    answer = pair.request("GET", path, params={"after": "-1", "wait": "5"})
    pair.pump(10)
    assert answer == []
    sent = source.push(8)
    pair.http.flush()
    status, headers, body = answer[0]
    assert status == 200
    assert header(headers, b"content-type") == wire.CONTENT_TYPE
    assert header(headers, wire.KIND) == b"iq"
    assert (header(headers, wire.FIRST_SEQ), header(headers, wire.LAST_SEQ)) == (b"0", b"0")
    assert header(headers, wire.END) == b"0"
    [chunk] = decode_chunks(body)
    assert chunk == sent


def test_poll_times_out_with_204_through_the_clock(pair, source):
    """An idle poll is answered 204 when its wait runs out on the injected clock."""
    path = open_stream(pair)
    answer = pair.request("GET", path, params={"wait": "2"})
    pair.clock.advance(1.9)
    pair.http.flush()
    assert answer == []
    pair.clock.advance(0.2)
    pair.http.flush()
    assert answer[0][0] == 204
    assert len(pair.clock.getDelayedCalls()) == 1  # only the watch for an idle reader


def test_waiting_chunks_travel_in_one_answer(pair, source):
    """Chunks that wait for a poll are batched into one body, in order."""
    path = open_stream(pair, maxsize=16)
    sent = [source.push(n) for n in (3, 5, 7, 1, 2)]
    status, headers, body = pair.call("GET", path, params={"after": "-1"})
    assert status == 200
    assert [c.seq for c in decode_chunks(body)] == [0, 1, 2, 3, 4]
    assert [c.data.tolist() for c in decode_chunks(body)] == [c.data.tolist() for c in sent]
    assert header(headers, wire.LAST_SEQ) == b"4"


def test_an_answer_stops_at_the_byte_limit(pair, source):
    """A batch holds at most max_batch_bytes, but always one chunk."""
    path = open_stream(pair, maxsize=16)
    pair.worker.streams[path.rsplit("/", 1)[1]].max_batch_bytes = 100
    for _ in range(3):
        source.push(8)  # 64 bytes of samples, about 100 encoded
    _, headers, body = pair.call("GET", path)
    assert len(decode_chunks(body)) == 1
    _, headers, body = pair.call("GET", path, params={"after": "0"})
    assert [c.seq for c in decode_chunks(body)] == [1]


def test_unacknowledged_chunks_are_sent_again(pair, source):
    """The after cursor is the acknowledgement: a repeated poll gets the same chunks."""
    path = open_stream(pair)
    source.push(4)
    source.push(4)
    first = pair.call("GET", path, params={"after": "-1"})[2]
    again = pair.call("GET", path, params={"after": "-1"})[2]
    assert first == again
    source.push(4)
    _, _, body = pair.call("GET", path, params={"after": "1"})
    assert [c.seq for c in decode_chunks(body)] == [2]
    stats = pair.worker.streams[path.rsplit("/", 1)[1]].stats
    assert stats["acknowledged"] == 1 and stats["backlog"] == 1


def test_block_policy_pauses_the_producer_until_acknowledged(pair, source):
    """A full backlog pauses the block; acknowledging resumes it, nothing lost."""
    path = open_stream(pair, maxsize=4)
    pushed = []
    while not source.paused:
        pushed.append(source.push(2))
    assert len(pushed) == 4 + 2  # the backlog, then the edge's own queue
    stream = pair.worker.streams[path.rsplit("/", 1)[1]]
    assert stream.stats["backlog"] == 4 and stream.stats["paused"]
    _, _, body = pair.call("GET", path)
    assert [c.seq for c in decode_chunks(body)] == [0, 1, 2, 3]
    assert source.paused  # sent is not acknowledged
    _, _, body = pair.call("GET", path, params={"after": "3"})
    assert not source.paused
    assert [c.seq for c in decode_chunks(body)] == [4, 5]
    assert stream.dropped == 0


@pytest.mark.parametrize("policy, maxsize, kept", [("drop_oldest", 3, [7, 8, 9]),
                                                   ("latest", None, [9])])
def test_lossy_policies_count_their_drops(pair, source, policy, maxsize, kept):
    """drop_oldest and latest never pause; drops show in the header and the stats."""
    path = open_stream(pair, policy=policy, maxsize=maxsize)
    for _ in range(10):
        source.push(2)
    assert not source.paused
    _, headers, body = pair.call("GET", path)
    assert [c.seq for c in decode_chunks(body)] == kept
    assert int(header(headers, wire.DROPPED)) == 10 - len(kept)
    _, _, listing = pair.call("GET", "/blocks/src")
    assert json.loads(listing)["streams"][0]["dropped"] == 10 - len(kept)


def test_end_of_stream_is_in_the_headers(pair, source):
    """The last answer says the stream ended; later polls get 204 with the flag."""
    path = open_stream(pair)
    source.push(2)
    source.finish()
    _, headers, body = pair.call("GET", path)
    assert header(headers, wire.END) == b"1" and len(decode_chunks(body)) == 1
    status, headers, _ = pair.call("GET", path, params={"after": "0", "wait": "5"})
    assert status == 204 and header(headers, wire.END) == b"1"


def test_a_held_poll_is_dropped_when_the_reader_goes(pair, source):
    """A disconnected poll is forgotten and its timer cancelled."""
    stream = ServedStream("1", source, pair.clock)
    request = DummyRequest([b"streams", b"1"])
    stream.poll(request, -1, 10)
    assert stream.stats["waiting_polls"] == 1
    request.processingFailed(Failure(ConnectionDone()))
    assert stream.stats["waiting_polls"] == 0
    assert len(pair.clock.getDelayedCalls()) == 1  # only the watch for an idle reader
    source.push(2)  # nothing is written to the departed request
    assert request.written == []


@pytest.mark.parametrize("params, code, words", [
    ({"after": "5"}, 400, "beyond the newest"),
    ({"after": "x"}, 400, "after='x'"),
    ({"wait": "1e9"}, 400, "wait="),
    ({"after": "-7"}, 400, "after=-7"),
])
def test_bad_cursors_get_a_clear_4xx(pair, source, params, code, words):
    """Malformed or impossible poll arguments are answered 4xx with a reason."""
    path = open_stream(pair)
    source.push(2)
    status, _, body = pair.call("GET", path, params=params)
    assert status == code and words in json.loads(body)["error"]


def test_a_cursor_behind_the_acknowledged_one_conflicts(pair, source):
    """Under block policy, asking again for acknowledged chunks is a 409."""
    path = open_stream(pair)
    source.push(2)
    source.push(2)
    pair.call("GET", path, params={"after": "1", "wait": "0"})
    status, _, body = pair.call("GET", path, params={"after": "0"})
    assert status == 409 and "acknowledged up to 1" in json.loads(body)["error"]


def test_closing_a_stream_releases_the_block(pair, source):
    """DELETE on a stream unsubscribes it: the block goes idle, the stream is gone."""
    path = open_stream(pair)
    assert source.active
    assert pair.call("DELETE", path)[0] == 200
    assert not source.active
    assert pair.call("GET", path)[0] == 404


def test_a_failed_worker_graph_is_reported_to_the_reader(pair, source):
    """When a block fails on the worker, polls answer 500 naming the block."""
    path = open_stream(pair)
    answer = pair.request("GET", path, params={"wait": "5"})
    pair.server.fail(source, Failure(ValueError("overload at 3 GHz")))
    pair.http.flush()
    status, _, body = answer[0]
    assert status == 500
    assert json.loads(body)["error"] == ("manual_source 'src' failed on the worker: "
                                         "ValueError: overload at 3 GHz")


@settings(max_examples=30, deadline=None)
@given(sizes=st.lists(st.integers(0, 300), min_size=1, max_size=12),
       dtype=st.sampled_from(["complex64", "float32", "int16", "uint8", "float64"]),
       batch=st.integers(1, 5000))
def test_chunks_cross_unchanged_whatever_the_cut_and_batching(sizes, dtype, batch):
    """Any cut of the samples, any byte limit: the reader gets the same chunks, once each."""
    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    path = open_stream(pair, maxsize=64)
    pair.worker.streams[path.rsplit("/", 1)[1]].max_batch_bytes = batch
    sent = [source.push(n, np.dtype(dtype)) for n in sizes]
    source.finish()
    received, after, ended = [], -1, False
    while not ended:
        status, headers, body = pair.call("GET", path, params={"after": str(after)})
        chunks = decode_chunks(body) if status == 200 else []
        received += chunks
        after = chunks[-1].seq if chunks else after
        ended = header(headers, wire.END) == b"1"
    assert received == sent


def test_a_stream_nobody_polls_is_closed_and_releases_its_block(pair, source):
    """A reader silent for IDLE_TIMEOUT after its last wait loses its stream."""
    path = open_stream(pair)
    pair.call("GET", path, params={"wait": "0"})
    pair.clock.advance(IDLE_TIMEOUT - 1)
    assert source.active
    held = pair.request("GET", path, params={"wait": "30"})
    pair.clock.advance(IDLE_TIMEOUT)
    pair.http.flush()
    assert source.active and held[0][0] == 204  # a held poll is not silence
    pair.clock.advance(30 + IDLE_TIMEOUT)
    assert not source.active and pair.worker.streams == {}
    assert pair.call("GET", path)[0] == 404


def test_a_stream_cannot_keep_more_than_the_cap(pair, source):
    """Asking a stream to keep more than MAX_MAXSIZE chunks is a 400."""
    status, _, body = pair.call("POST", "/blocks/src/streams", json={"maxsize": 10 ** 6})
    assert status == 400 and "maxsize must be at most 1024" in json.loads(body)["error"]


def test_a_backlog_of_many_bytes_pauses_the_producer_too(pair, source):
    """Under block policy the backlog's bytes bound it as well as its chunk count."""
    path = open_stream(pair, maxsize=100)
    stream = pair.worker.streams[path.rsplit("/", 1)[1]]
    stream.max_backlog_bytes = 1000
    pushed = 0
    while not source.paused:
        source.push(64)  # 512 bytes of complex64
        pushed += 1
    assert stream.stats["backlog"] == 2 and stream.stats["backlog_bytes"] == 1024
    _, _, body = pair.call("GET", path, params={"after": "1"})
    assert not source.paused
    assert [c.seq for c in decode_chunks(body)] == list(range(2, pushed))


def open_answer(pair, path, **params):
    """
    A lingering GET: a dict that gets the status, headers and every piece
    of body as it arrives, and ``done`` when the answer ends.
    """
    import treq

    answer = {"pieces": [], "done": False}

    def received(response):
        answer["status"], answer["headers"] = response.code, response.headers
        answer["length"] = response.length
        d = treq.collect(response, answer["pieces"].append)
        return d.addCallback(lambda _: answer.update(done=True))
    pair.http.get(WORKER_URL + path, params=params, unbuffered=True).addCallback(received)
    pair.http.flush()
    return answer


WORKER_URL = "http://worker"


def answer_chunks(answer):
    return decode_chunks(b"".join(answer["pieces"]))


def test_a_lingering_answer_carries_chunks_emitted_after_it_began(pair, source):
    """With linger, one answer goes on carrying each new chunk until its time is up."""
    path = open_stream(pair)
    answer = open_answer(pair, path, after="-1", wait="5", linger="2")
    pair.pump(3)
    assert "status" not in answer  # held: nothing to send yet
    sent = [source.push(4)]
    pair.pump(3)
    assert answer["status"] == 200 and not answer["done"]
    assert header(answer["headers"], wire.FIRST_SEQ) == b"0"
    assert answer["headers"].getRawHeaders(wire.LAST_SEQ) is None
    assert answer["length"] is UNKNOWN_LENGTH
    sent += [source.push(4), source.push(4)]
    pair.pump(3)
    assert answer_chunks(answer) == sent and not answer["done"]
    pair.clock.advance(2)
    pair.pump(3)
    assert answer["done"] and answer_chunks(answer) == sent
    stream = pair.worker.streams[path.rsplit("/", 1)[1]]
    assert stream.stats["chunks_out"] == 3 and not stream.stats["answering"]


def test_chunks_of_one_turn_go_in_one_write(pair, source):
    """Chunks emitted in the same reactor turn reach a lingering answer as one piece."""
    path = open_stream(pair, maxsize=64)
    source.push(4)
    answer = open_answer(pair, path, after="-1", linger="5")
    pair.pump(2)
    pieces = len(answer["pieces"])
    sent = [source.push(4) for _ in range(5)]
    pair.pump(2)
    assert len(answer["pieces"]) == pieces + 1
    assert answer_chunks(answer)[1:] == sent


def test_a_lingering_answer_ends_when_half_the_window_is_in_flight(pair, source):
    """Under block, an answer stops after maxsize/2 chunks so the reader acknowledges them."""
    path = open_stream(pair, maxsize=8)
    answer = open_answer(pair, path, after="-1", linger="30")
    for _ in range(6):
        source.push(2)
        pair.pump(1)
    assert answer["done"]
    assert [c.seq for c in answer_chunks(answer)] == [0, 1, 2, 3]
    _, _, body = pair.call("GET", path, params={"after": "3", "linger": "0"})
    assert [c.seq for c in decode_chunks(body)] == [4, 5]


def test_a_backlog_goes_as_one_planned_answer_even_when_lingering_is_asked(pair, source):
    """When much is waiting, the answer carries it with a Content-Length and ends."""
    path = open_stream(pair, maxsize=64)
    sent = [source.push(8192) for _ in range(5)]  # 5 x 64 KiB waiting
    answer = open_answer(pair, path, after="-1", linger="30")
    pair.pump(2)
    assert answer["done"] and answer_chunks(answer) == sent
    assert header(answer["headers"], wire.LAST_SEQ) == b"4"
    assert answer["length"] == sum(map(len, answer["pieces"]))


@pytest.mark.parametrize("policy", ["drop_oldest", "latest"])
def test_lossy_streams_never_linger(pair, source, policy):
    """A lossy stream answers with what waits, so a slow reader gets the newest chunks."""
    path = open_stream(pair, policy=policy, maxsize=2)
    source.push(2)
    answer = open_answer(pair, path, after="-1", linger="30")
    pair.pump(2)
    assert answer["done"] and [c.seq for c in answer_chunks(answer)] == [0]


def test_a_new_poll_ends_the_lingering_answer_it_replaces(pair, source):
    """A reader that polls again (its answer lost) gets the unacknowledged chunks anew."""
    path = open_stream(pair)
    source.push(2)
    first = open_answer(pair, path, after="-1", linger="30")
    pair.pump(2)
    source.push(2)
    pair.pump(2)
    assert not first["done"]
    _, _, body = pair.call("GET", path, params={"after": "-1", "linger": "0"})
    assert first["done"]
    assert [c.seq for c in decode_chunks(body)] == [0, 1]


@pytest.mark.parametrize("params, words", [({"linger": "-1"}, "linger=-1.0"),
                                           ({"linger": "61"}, "between 0 and 60"),
                                           ({"linger": "soon"}, "not a number")])
def test_a_bad_linger_gets_a_400(pair, source, params, words):
    """linger is checked like wait: a number of seconds up to the maximum."""
    path = open_stream(pair)
    status, _, body = pair.call("GET", path, params=params)
    assert status == 400 and words in json.loads(body)["error"]


# Sequence numbers: a stream carries its output's own seq.

def test_a_stream_opened_mid_way_carries_the_blocks_own_seq(pair, source):
    """Chunks keep the seq the block gave them; the first poll counts nothing before them as dropped."""
    for _ in range(3):
        source.push(2)  # emitted before anyone listened
    path = open_stream(pair)
    sent = [source.push(2), source.push(2)]
    status, headers, body = pair.call("GET", path, params={"after": "-1"})
    assert status == 200 and decode_chunks(body) == sent
    assert [c.seq for c in decode_chunks(body)] == [3, 4]
    assert (header(headers, wire.FIRST_SEQ), header(headers, wire.LAST_SEQ)) == (b"3", b"4")
    assert header(headers, wire.START_SEQ) == b"3"
    assert header(headers, wire.DROPPED) == b"0"
    assert headers.getRawHeaders(wire.MISSED) is None
    stats = pair.worker.streams[path.rsplit("/", 1)[1]].stats
    assert stats["start_seq"] == 3 and stats["next_seq"] == 5 and stats["dropped"] == 0


def test_a_cursor_older_than_the_stream_gets_what_it_holds_and_the_gap(pair, source):
    """A reader resuming with a cursor before the stream's start is told how many chunks it never held."""
    for _ in range(10):
        source.push(2)
    path = open_stream(pair)
    held = pair.request("GET", path, params={"after": "4", "wait": "5"})
    assert held == []  # the stream holds nothing yet: the poll waits
    sent = source.push(2)
    pair.http.flush()
    status, headers, body = held[0]
    assert status == 200 and decode_chunks(body) == [sent]
    assert header(headers, wire.MISSED) == b"5"  # seqs 5 to 9 were never here
    assert header(headers, wire.START_SEQ) == b"10"
    assert header(headers, wire.DROPPED) == b"0"
    source.push(2)
    _, headers, body = pair.call("GET", path, params={"after": "9"})
    assert [c.seq for c in decode_chunks(body)] == [10, 11]
    assert headers.getRawHeaders(wire.MISSED) is None


def test_a_cursor_beyond_what_the_block_emitted_is_a_400(pair, source):
    """The after cursor is in the block's seq space: one past its newest chunk is refused."""
    for _ in range(10):
        source.push(2)
    path = open_stream(pair)
    source.push(2)
    status, _, body = pair.call("GET", path, params={"after": "11"})
    assert status == 400
    assert json.loads(body)["error"] == ("after=11 is beyond the newest chunk of stream "
                                         "src:main:1 (10)")
    _, _, body = pair.call("GET", path, params={"after": "9"})
    assert [c.seq for c in decode_chunks(body)] == [10]


def test_a_relayed_stream_with_gaps_is_served_in_order(pair, source):
    """Non-consecutive seqs in the backlog (a relay of a lossy stream) are found by bisection, gaps kept."""
    from pyrf_blocks.chunk import Chunk

    path = open_stream(pair, maxsize=16)
    answer = open_answer(pair, path, after="-1", linger="30")
    seqs = [2, 5, 6, 9, 20, 21, 40]
    sent = []
    for index, seq in enumerate(seqs):
        data = np.full(2, seq, np.complex64)
        sent.append(source.forward(Chunk("iq", data, index * 2000, index * 2000 + 2000,
                                         1e6, seq)))
        if index % 3 == 2:
            pair.pump(2)  # some arrive alone, some several to a turn
    pair.pump(2)
    assert answer_chunks(answer) == sent
    _, headers, body = pair.call("GET", path, params={"after": "9", "linger": "0"})
    assert [c.seq for c in decode_chunks(body)] == [20, 21, 40]
    assert header(headers, wire.DROPPED) == b"0"  # the gaps were made upstream


def test_stream_ids_name_the_block_and_output_and_are_never_reused(pair, source):
    """A stream's id is {block}:{output}:{n}, n counting that output's streams on the worker."""
    manual_source(graph=pair.server, name="other")
    answers = [json.loads(pair.call("POST", f"/blocks/{name}/streams", json={})[2])
               for name in ("src", "src", "other")]
    assert [a["id"] for a in answers] == ["src:main:1", "src:main:2", "other:main:1"]
    instances = [answer.pop("instance") for answer in answers]
    assert answers[0] == {"id": "src:main:1", "kind": "iq", "block": "src",
                          "output": "main", "path": "/streams/src:main:1"}
    assert len(set(instances)) == 3 and all(len(i) == 16 for i in instances)
    assert pair.call("DELETE", "/streams/src:main:2")[0] == 200
    again = json.loads(pair.call("POST", "/blocks/src/streams", json={})[2])
    assert again["id"] == "src:main:3"
    source.push(2)
    _, _, body = pair.call("GET", again["path"])
    assert [c.seq for c in decode_chunks(body)] == [0]


# Named outputs: each output of a block is a stream of its own.

@pytest.fixture
def tee(pair, source, tee_power):
    return tee_power(source, graph=pair.server, name="tee")


def test_each_output_of_a_block_is_streamed_on_its_own(pair, source, tee):
    """POST /blocks/{name}/streams with an output reads that output, with its kind and seq."""
    main = json.loads(pair.call("POST", "/blocks/tee/streams", json={})[2])
    power = json.loads(pair.call("POST", "/blocks/tee/streams",
                                 json={"output": "power", "policy": "drop_oldest",
                                       "maxsize": 4})[2])
    assert (main["kind"], main["output"], main["id"]) == ("iq", "main", "tee:main:1")
    assert (power["kind"], power["output"], power["id"]) == ("real", "power", "tee:power:1")
    sent = [source.push(4) for _ in range(4)]
    _, headers, body = pair.call("GET", power["path"])
    assert header(headers, wire.KIND) == b"real"
    powers = decode_chunks(body)
    assert [c.seq for c in powers] == [0, 1]
    assert [(c.start, c.end) for c in powers] == [(sent[0].start, sent[1].end),
                                                  (sent[2].start, sent[3].end)]
    expected = np.mean(np.abs(np.arange(8)) ** 2)
    np.testing.assert_allclose(powers[0].data, [expected], rtol=1e-6)
    _, _, body = pair.call("GET", main["path"])
    assert [c.seq for c in decode_chunks(body)] == [0, 1, 2, 3]


@pytest.mark.parametrize("block, spec, code, message", [
    ("tee", {"output": "pwr"}, 404, "tee_power 'tee' has no output 'pwr'; it has 'main', "
                                    "'power'"),
    ("src", {"output": "power"}, 404, "manual_source 'src' has no output 'power'; it has "
                                      "'main'"),
    ("tee", {"output": 3}, 400, "output must be an output name, got 3"),
    ("tee", {"outputz": "power"}, 400, "unknown field(s) outputz; a stream takes output, "
                                       "policy, maxsize and key"),
    ("tee", {"outputs": ["main", "pwr"]}, 404, "tee_power 'tee' has no output 'pwr'"),
    ("tee", {"outputs": "power"}, 400, "outputs must be a list of distinct output names"),
    ("tee", {"outputs": ["power", "power"]}, 400, "outputs must be a list of distinct"),
    ("tee", {"outputs": ["power"], "output": "main"}, 400,
     "unknown field(s) output; a stream takes outputs, policy, maxsize and key"),
])
def test_a_bad_output_name_is_a_4xx_naming_the_block_and_its_outputs(pair, tee, block, spec,
                                                                     code, message):
    """Opening a stream of an output the block does not have is refused, listing what it has."""
    status, _, body = pair.call("POST", f"/blocks/{block}/streams", json=spec)
    assert status == code and message in json.loads(body)["error"]
    assert pair.worker.streams == {}


def test_several_outputs_opened_in_one_request_start_at_the_same_chunk(pair, source, tee):
    """POST with "outputs" opens a stream of each before the block can emit again."""
    status, _, body = pair.call("POST", "/blocks/tee/streams",
                                json={"outputs": ["power", "main"], "maxsize": 8})
    assert status == 201, body
    answers = json.loads(body)["streams"]
    assert [(a["id"], a["kind"], a["output"]) for a in answers] == [
        ("tee:power:1", "real", "power"), ("tee:main:1", "iq", "main")]
    for _ in range(2):
        source.push(4)
    seqs = {answer["output"]: [c.seq for c in decode_chunks(pair.call("GET", answer["path"])[2])]
            for answer in answers}
    assert seqs == {"power": [0], "main": [0, 1]}


# Opening a stream again after a lost answer, and stream instances.

def test_a_retried_open_with_its_key_gets_the_same_stream(pair, source):
    """POST .../streams with a key already used by the same request answers 200 with the same stream."""
    spec = {"maxsize": 8, "key": "retry-key-0001"}
    first = pair.call("POST", "/blocks/src/streams", json=spec)
    again = pair.call("POST", "/blocks/src/streams", json=spec)
    assert (first[0], again[0]) == (201, 200)
    assert json.loads(first[2]) == json.loads(again[2])
    assert len(pair.worker.streams) == 1
    status, _, body = pair.call("POST", "/blocks/src/streams",
                                json={"maxsize": 4, "key": "retry-key-0001"})
    assert status == 409 and "a key names one request" in json.loads(body)["error"]
    status, _, body = pair.call("POST", "/blocks/src/streams", json={"key": "short"})
    assert status == 400 and "8 to 128" in json.loads(body)["error"]
    pair.call("DELETE", json.loads(first[2])["path"])
    status, _, body = pair.call("POST", "/blocks/src/streams", json=spec)
    assert status == 410 and "closed already" in json.loads(body)["error"]


def test_a_stream_never_polled_releases_its_block_after_the_first_poll_timeout(pair, source):
    """A stream whose opener never polls (its answer was lost) closes after FIRST_POLL_TIMEOUT."""
    from pyrf_blocks.net.stream import FIRST_POLL_TIMEOUT

    open_stream(pair)
    pair.clock.advance(FIRST_POLL_TIMEOUT - 0.5)
    assert source.active and len(pair.worker.streams) == 1
    pair.clock.advance(1)
    assert not source.active and pair.worker.streams == {}


def test_every_answer_names_the_stream_instance_and_another_one_is_refused(pair, source):
    """X-Pyrf-Stream-Instance is on every answer; a poll naming another instance gets 410 and acknowledges nothing."""
    answer = json.loads(pair.call("POST", "/blocks/src/streams", json={})[2])
    instance = answer["instance"]
    source.push(2)
    status, headers, _ = pair.call("GET", answer["path"], params={"wait": "0"})
    assert status == 200 and header(headers, wire.INSTANCE) == instance.encode()
    status, headers, body = pair.call("GET", answer["path"], params={
        "after": "0", "wait": "0", "instance": "0123456789abcdef"})
    assert status == 410 and header(headers, wire.INSTANCE) == instance.encode()
    assert "not the stream you opened" in json.loads(body)["error"]
    assert pair.worker.streams[answer["id"]].acknowledged == -1
    status, _, body = pair.call("GET", answer["path"], params={"instance": "XYZ"})
    assert status == 400 and "not a stream instance" in json.loads(body)["error"]
    status, _, body = pair.call("GET", answer["path"], params={
        "after": "-1", "wait": "0", "instance": instance})
    assert status == 200 and [c.seq for c in decode_chunks(body)] == [0]
