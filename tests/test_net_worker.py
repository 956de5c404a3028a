"""
The worker's control API and its security rules, through treq's StubTreq.
"""

import json
import re

import pytest
from twisted.internet.task import Clock

from pyrf_blocks.chunk import decode_chunks
from pyrf_blocks.net.worker import check_listen
from pyrf_blocks.testing import WorkerPair, manual_source


SOURCE = {"type": "simulated_instrument", "name": "wsa",
          "params": {"paced": False, "count": 3, "tones": [[1e6, -20.0]]}}


def body_of(answer):
    return json.loads(answer[2])


@pytest.fixture
def pair():
    return WorkerPair()


def test_health_answers(pair):
    """GET /health reports the worker alive with its counts."""
    status, headers, body = pair.call("GET", "/health")
    assert status == 200 and headers.getRawHeaders(b"content-type") == [b"application/json"]
    assert json.loads(body) == {"status": "ok", "blocks": 0, "streams": 0, "failure": None,
                                "failed_blocks": {}}


def test_blocks_are_created_connected_and_listed(pair):
    """Registered types are created with parameters and inputs by name; nothing starts."""
    assert pair.call("POST", "/blocks", json=SOURCE)[0] == 201
    status, _, body = pair.call("POST", "/blocks", json={
        "type": "fft_block", "name": "fft", "inputs": ["wsa"], "params": {"size": 256}})
    assert status == 201
    assert json.loads(body)["kind"] == "spectrum" and json.loads(body)["inputs"] == ["wsa"]
    assert pair.server.blocks["fft"].size == 256
    listing = body_of(pair.call("GET", "/blocks"))["blocks"]
    assert [(b["name"], b["type"], b["active"]) for b in listing] == [
        ("wsa", "simulated_instrument", False), ("fft", "fft_block", False)]


def test_listing_shows_edge_and_stream_statistics(pair):
    """After streaming, the listing carries chunks and bytes through each edge and stream."""
    pair.call("POST", "/blocks", json=SOURCE)
    pair.call("POST", "/blocks", json={"type": "fft_block", "name": "fft", "inputs": ["wsa"]})
    path = body_of(pair.call("POST", "/blocks/fft/streams", json={}))["path"]
    pair.pump(20)
    chunks = decode_chunks(pair.call("GET", path)[2])
    assert len(chunks) == 3
    wsa, fft = body_of(pair.call("GET", "/blocks"))["blocks"]
    assert wsa["edges"][0]["chunks_out"] == 3
    assert wsa["edges"][0]["bytes_out"] == 3 * 16 * 1024 * 8
    assert fft["streams"][0]["chunks_out"] == 3 and fft["streams"][0]["dropped"] == 0
    assert fft["streams"][0]["bytes_out"] > 3 * 16 * 1024 * 4


@pytest.mark.parametrize("spec, code, message", [
    ({"type": "fft_blok"}, 404, "unknown block type 'fft_blok'; did you mean 'fft_block'?"),
    ({"type": "os.system"}, 404, "unknown block type 'os.system'"),
    ({"type": 7}, 400, "'type' must be a block type name, got 7"),
    ({"type": "fft_block", "inputs": ["nope"]}, 404, "no block named 'nope'"),
    ({"type": "fft_block", "inputs": ["wsa"], "params": {"sise": 3}}, 400,
     "fft_block has no parameter(s) sise"),
    ({"type": "fft_block", "inputs": ["wsa"], "params": {"size": 1}}, 400,
     "cannot create fft_block: size: must be at least 8, got 1"),
    ({"type": "fft_block", "inputs": []}, 400, "missing 1 required positional argument"),
    ({"type": "fft_block", "name": "../x", "inputs": ["wsa"]}, 400, "name '../x'"),
    ({"type": "fft_block", "inputs": [{"url": "file:///etc/passwd", "kind": "iq"}]}, 400,
     "is not http(s)://host:port/blocks/NAME"),
    ({"type": "fft_block", "extra": 1}, 400, "unknown field(s) 'extra'"),
    ({"type": "fft_block", "params": [1]}, 400, "'params' must be an object"),
    ({"type": "record_block", "inputs": ["wsa"], "params": {"path": "/etc/cron.d/x"}}, 403,
     "record_block reads or writes files on this machine and cannot be created remotely"),
    ({"type": "sigmf_source", "params": {"path": "/etc/passwd"}}, 403,
     "sigmf_source reads or writes files"),
])
def test_bad_creations_get_a_4xx_naming_the_problem(pair, spec, code, message):
    """Unknown types, parameters and inputs are refused with a clear message."""
    pair.call("POST", "/blocks", json=SOURCE)
    status, _, body = pair.call("POST", "/blocks", json=spec)
    assert status == code
    assert message in json.loads(body)["error"]
    assert set(pair.server.blocks) == {"wsa"}


@pytest.mark.parametrize("data, message", [
    (b"{", "malformed JSON body"),
    (b"\xff\xfe", "malformed JSON body"),
    (b"[1, 2]", "the JSON body must be an object"),
])
def test_malformed_json_is_a_400(pair, data, message):
    """Bodies that are not a JSON object are refused with 400."""
    status, _, body = pair.call("POST", "/blocks", data=data)
    assert status == 400 and message in json.loads(body)["error"]


def test_a_body_over_the_limit_is_a_413():
    """A request body larger than the limit is refused with 413."""
    pair = WorkerPair(max_body=100)
    status, _, body = pair.call("POST", "/blocks", json={"type": "x" * 200})
    assert status == 413 and "exceeds 100 bytes" in json.loads(body)["error"]


def test_a_worker_takes_only_limits_in_their_ranges():
    """max_body from 1 byte to MAX_BODY_LIMIT, request_deadline and lease in (0, MAX_SECONDS): anything else is refused, naming the limit as the caller calls it."""
    from pyrf_blocks.graph import Graph
    from pyrf_blocks.net.worker import MAX_BODY_LIMIT, MAX_SECONDS, Worker, check_limits

    for kwargs, message in (
            ({"max_body": 0}, "max_body must be a whole number of bytes from 1 to "
                              f"{MAX_BODY_LIMIT}, got 0"),
            ({"max_body": MAX_BODY_LIMIT + 1}, f"got {MAX_BODY_LIMIT + 1}"),
            ({"max_body": 1e3}, "got 1000.0"),
            ({"request_deadline": 0}, "request_deadline must be more than 0 and less than "
                                      f"{MAX_SECONDS:g} seconds, got 0"),
            ({"request_deadline": float("nan")}, "got nan"),
            ({"lease": MAX_SECONDS}, f"lease must be more than 0 and less than {MAX_SECONDS:g}"),
            ({"lease": True}, "got True")):
        with pytest.raises(ValueError, match=re.escape(message)):
            Worker(Graph(Clock()), **kwargs)
    with pytest.raises(ValueError, match="^--lease must be more than 0"):
        check_limits(lease=-1, names={"lease": "--lease"})
    worker = Worker(Graph(Clock()), max_body=MAX_BODY_LIMIT, request_deadline=0.5, lease=1)
    assert worker.max_body == MAX_BODY_LIMIT and worker.lease == 1


@pytest.mark.parametrize("name", ["max_blocks", "max_streams"])
@pytest.mark.parametrize("value", [0, -1, True, 2.5, 1e3, "10", None, 100_001, 10 ** 30])
def test_a_worker_takes_counts_of_blocks_and_streams_only_in_their_range(name, value):
    """max_blocks and max_streams are whole numbers from 1 to MAX_COUNT_LIMIT, checked as the other limits are (before: none was checked)."""
    from pyrf_blocks.graph import Graph
    from pyrf_blocks.net.worker import MAX_COUNT_LIMIT, Worker, check_limits

    message = f"{name} must be a whole number from 1 to {MAX_COUNT_LIMIT}, got {value!r}"
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        Worker(Graph(Clock()), **{name: value})
    option = "--" + name.replace("_", "-")
    with pytest.raises(ValueError, match=f"^{re.escape(option)} must be a whole number"):
        check_limits(**{name: value}, names={name: option})
    assert getattr(Worker(Graph(Clock()), **{name: MAX_COUNT_LIMIT}), name) == MAX_COUNT_LIMIT


def test_a_worker_holds_at_most_its_blocks_and_streams():
    """Beyond max_blocks a POST /blocks is a 429 saying why, and beyond max_streams a POST .../streams (one output or several, all or none); deleting makes room again (3 000 blocks were accepted before)."""
    from pyrf_blocks.net.worker import MAX_BLOCKS, MAX_STREAMS

    assert (MAX_BLOCKS, MAX_STREAMS) == (1000, 1000)
    pair = WorkerPair(max_blocks=3, max_streams=2)
    for index in range(3):
        assert pair.call("POST", "/blocks", json=dict(SOURCE, name=f"s{index}"))[0] == 201
    status, _, body = pair.call("POST", "/blocks", json=dict(SOURCE, name="s3"))
    assert status == 429
    assert json.loads(body)["error"].startswith("this worker holds 3 blocks, its limit: delete "
                                                "some first (what vanished clients made goes "
                                                "after the lease, 120 s)")
    assert pair.call("DELETE", "/blocks/s2")[0] == 200
    assert pair.call("POST", "/blocks", json=dict(SOURCE, name="s3"))[0] == 201
    opened = [body_of(pair.call("POST", f"/blocks/s{index}/streams", json={}))
              for index in (0, 1)]
    status, _, body = pair.call("POST", "/blocks/s3/streams", json={})
    assert status == 429 and "has 2 streams open, and 2 at most" in json.loads(body)["error"]
    status, _, _ = pair.call("POST", "/blocks/s3/streams", json={"outputs": ["main"]})
    assert status == 429
    assert len(body_of(pair.call("GET", "/streams"))["streams"]) == 2
    assert pair.call("DELETE", f"/streams/{opened[0]['id']}")[0] == 200
    assert pair.call("POST", "/blocks/s3/streams", json={})[0] == 201


@pytest.mark.timeout(60)
def test_the_worker_command_gives_its_max_blocks_and_max_streams_to_the_worker():
    """pyrf-blocks worker --max-blocks 2 --max-streams 1 (a real process): a third block and a second stream are 429s; --help states net.worker's numbers."""
    import subprocess
    import sys

    from net_real import ROOT, RealWorker, environment

    from pyrf_blocks.net.worker import MAX_BLOCKS, MAX_COUNT_LIMIT, MAX_STREAMS

    worker = RealWorker(args=("--max-blocks", "2", "--max-streams", "1"))
    try:
        for name in ("a", "b"):
            worker.json("POST", "/blocks", dict(SOURCE, name=name), expect=201)
        status, _, body = worker.call("POST", "/blocks", dict(SOURCE, name="c"))
        assert status == 429 and "holds 2 blocks, its limit" in json.loads(body)["error"]
        worker.json("POST", "/blocks/a/streams", {}, expect=201)
        status, _, body = worker.call("POST", "/blocks/b/streams", {})
        assert status == 429 and "1 at most" in json.loads(body)["error"]
    finally:
        worker.stop()
    assert "Traceback" not in worker.stderr()
    shown = subprocess.run([sys.executable, "-m", "pyrf_blocks.cli", "worker", "--help"],
                           cwd=ROOT, env=environment(), capture_output=True, text=True,
                           timeout=60).stdout
    shown = " ".join(shown.split())
    assert f"(default {MAX_BLOCKS}, at most {MAX_COUNT_LIMIT})" in shown
    assert f"(default {MAX_STREAMS}, at most {MAX_COUNT_LIMIT})" in shown


def test_removing_blocks(pair):
    """A block in use cannot be removed (409); an unused one can, then it is gone."""
    pair.call("POST", "/blocks", json=SOURCE)
    pair.call("POST", "/blocks", json={"type": "fft_block", "name": "fft", "inputs": ["wsa"]})
    status, _, body = pair.call("DELETE", "/blocks/wsa")
    assert status == 409 and "in use by fft" in json.loads(body)["error"]
    assert pair.call("DELETE", "/blocks/fft")[0] == 200
    assert pair.call("DELETE", "/blocks/wsa")[0] == 200
    assert pair.call("GET", "/blocks/wsa")[0] == 404
    assert pair.server.blocks == {}


def test_stopping_a_source_ends_its_streams(pair):
    """POST /blocks/{name}/stop ends a source's stream; readers see the end."""
    pair.call("POST", "/blocks", json={"type": "simulated_instrument", "name": "wsa",
                                       "params": {"paced": True}})
    path = body_of(pair.call("POST", "/blocks/wsa/streams", json={}))["path"]
    pair.pump(5)
    assert pair.call("POST", "/blocks/wsa/stop")[0] == 200
    after, ended = -1, False
    while not ended:
        status, headers, body = pair.call("GET", path, params={"after": str(after)})
        if status == 200:
            after = decode_chunks(body)[-1].seq
        ended = headers.getRawHeaders(b"x-pyrf-end") == [b"1"]
    status, _, body = pair.call("POST", "/blocks/wsa/stop")
    assert status == 200
    pair.call("POST", "/blocks", json={"type": "fft_block", "name": "fft", "inputs": ["wsa"]})
    assert pair.call("POST", "/blocks/fft/stop")[0] == 409


@pytest.mark.parametrize("method, path, code", [
    ("GET", "/", 404), ("GET", "/admin", 404), ("GET", "/blocks/x/y/z", 404),
    ("PUT", "/blocks", 405), ("POST", "/health", 405), ("PATCH", "/streams/1", 405),
])
def test_unknown_routes_and_methods(pair, method, path, code):
    """Unknown resources get 404 and wrong methods 405, both as JSON errors."""
    status, _, body = pair.call(method, path)
    assert status == code and "error" in json.loads(body)


@pytest.mark.parametrize("headers, code", [
    ({}, 401), ({"Authorization": "Bearer wrong"}, 401),
    ({"Authorization": "Bearer s3cret-but-longer"}, 401),
    ({"Authorization": "bearer s3cret"}, 401),
    ({"Authorization": "Bearer s3cret"}, 200),
])
def test_with_a_token_every_request_needs_it(headers, code):
    """A worker with a token answers 401 unless the exact bearer token is sent."""
    pair = WorkerPair(token="s3cret")
    for path in ("/health", "/blocks", "/nowhere"):
        status, answer_headers, body = pair.call("GET", path, headers=headers)
        if code == 401:
            assert status == 401
            assert answer_headers.getRawHeaders(b"www-authenticate")
            assert json.loads(body)["error"] == "missing or wrong bearer token"
        else:
            assert status != 401


@pytest.mark.parametrize("description", [
    "tcp:8750:interface=127.0.0.1", "tcp:0:interface=127.0.0.3",
    r"tcp6:8750:interface=\:\:1", "tcp:0:interface=localhost", "unix:/tmp/w.sock",
])
def test_loopback_needs_no_token(description):
    """Loopback and unix sockets may be served without a token."""
    check_listen(description, None)


@pytest.mark.parametrize("description", [
    "tcp:8750", "tcp:8750:interface=0.0.0.0", "tcp:8750:interface=192.168.1.4",
    "ssl:8750:privateKey=k.pem", r"tcp6:8750:interface=\:\:",
])
def test_other_addresses_need_a_token(description):
    """Binding anything but loopback without a token is refused, naming the address."""
    with pytest.raises(ValueError, match="without a token"):
        check_listen(description, None)
    check_listen(description, "a-token")


def test_finished_is_long_polled_until_the_sink_has_seen_the_end():
    """GET /blocks/{sink}/finished waits (204 when the wait runs out), then says finished."""
    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    assert pair.call("POST", "/blocks", json={"type": "collector", "name": "c",
                                              "inputs": ["src"]})[0] == 201
    held = pair.request("GET", "/blocks/c/finished", params={"wait": "5"})
    pair.clock.advance(4.9)
    pair.http.flush()
    assert held == []
    pair.clock.advance(0.2)
    pair.http.flush()
    assert held[0][0] == 204
    held = pair.request("GET", "/blocks/c/finished", params={"wait": "5"})
    source.push(2)
    source.finish()
    pair.http.flush()
    assert held[0][0] == 200 and json.loads(held[0][2]) == {"finished": True}
    status, _, body = pair.call("GET", "/blocks/src/finished")
    assert status == 409 and "is not a sink" in json.loads(body)["error"]


# Named outputs in the control API.

@pytest.fixture
def tee_pair(tee_power):
    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    tee_power(source, graph=pair.server, name="tee")
    return pair


def test_a_listing_describes_every_output_with_its_kind_edges_and_streams(tee_pair):
    """GET /blocks/{name} lists each output with its kind, next seq, edges and streams."""
    pair = tee_pair
    pair.call("POST", "/blocks/tee/streams", json={"output": "power"})
    pair.server.blocks["src"].push(4)
    pair.server.blocks["src"].push(4)
    tee = body_of(pair.call("GET", "/blocks/tee"))
    main, power = tee["outputs"]
    assert (main["name"], main["kind"], main["next_seq"]) == ("main", "iq", 2)
    assert (power["name"], power["kind"], power["next_seq"]) == ("power", "real", 1)
    assert main["streams"] == [] and main["edges"] == []
    assert [s["id"] for s in power["streams"]] == ["tee:power:1"]
    assert power["streams"][0]["output"] == "power" and len(power["edges"]) == 1
    assert [s["id"] for s in tee["streams"]] == ["tee:power:1"]  # all the block's streams


@pytest.mark.parametrize("item", ["tee:power", {"block": "tee", "output": "power"}])
def test_an_input_may_name_an_output_of_a_block(tee_pair, item):
    """Inputs given as "block:output" or {"block", "output"} read that output."""
    pair = tee_pair
    status, _, body = pair.call("POST", "/blocks", json={"type": "collector", "name": "c",
                                                         "inputs": [item]})
    assert status == 201, body
    assert json.loads(body)["inputs"] == ["tee:power"]
    for _ in range(4):
        pair.server.blocks["src"].push(4)
    assert [c.seq for c in pair.server.blocks["c"].chunks] == [0, 1]
    assert [c.kind for c in pair.server.blocks["c"].chunks] == ["real", "real"]
    status, _, body = pair.call("DELETE", "/blocks/tee")
    assert status == 409 and "in use by c" in json.loads(body)["error"]


@pytest.mark.parametrize("item, code, message", [
    ("tee:pwr", 404, "collector: input 1: tee_power 'tee' has no output 'pwr'; it has "
                     "'main', 'power'"),
    ({"block": "tee", "output": "late"}, 404, "tee_power 'tee' has no output 'late'"),
    ({"block": "tee", "output": 5}, 400, "collector: input 1: output must be an output "
                                         "name, got 5"),
    ({"block": "tee", "kind": "real"}, 400, "collector: input 1: unknown field(s) kind"),
    ({"block": 7}, 400, "collector: input 1: block must be a block name"),
    ("nope:power", 404, "no block named 'nope'"),
    ({"url": "http://w/blocks/x", "kind": "iq", "output": ["late"]}, 400,
     "collector: input 1: output must be an output name, got ['late']"),
])
def test_bad_output_names_in_inputs_get_a_4xx(tee_pair, item, code, message):
    """An input naming an output the block lacks is refused, naming the block and its outputs."""
    pair = tee_pair
    status, _, body = pair.call("POST", "/blocks", json={"type": "collector",
                                                         "inputs": [item]})
    assert status == code and message in json.loads(body)["error"]
    assert set(pair.server.blocks) == {"src", "tee"}


def test_a_finished_poll_uses_the_public_request_api_and_forgets_a_reader_that_left():
    """The held /finished answer needs only notifyFinish(); a reader gone gets nothing written."""
    from twisted.internet.error import ConnectionDone
    from twisted.python.failure import Failure
    from twisted.web.server import NOT_DONE_YET
    from twisted.web.test.requesthelper import DummyRequest

    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    assert pair.call("POST", "/blocks", json={"type": "collector", "name": "c",
                                              "inputs": ["src"]})[0] == 201
    sink = pair.server.blocks["c"]
    staying, leaving = DummyRequest([b"blocks", b"c", b"finished"]), \
        DummyRequest([b"blocks", b"c", b"finished"])
    for request in (staying, leaving):
        request.args = {b"wait": [b"5"]}
        assert pair.worker.report_finished(request, sink) is NOT_DONE_YET
    leaving.processingFailed(Failure(ConnectionDone()))
    pair.clock.advance(5.1)
    assert staying.responseCode == 204 and staying.finished == 1
    assert leaving.written == [] and leaving.finished == 0 and leaving.responseCode is None
    source.push(2)
    source.finish()
    assert sink.finished and leaving.written == [] and leaving.finished == 0


class refusing_client:
    """An HTTP client for which every host refuses connections (a closed port)."""

    def request(self, method, url, **kwargs):
        from twisted.internet import defer
        from twisted.internet.error import ConnectionRefusedError
        return defer.fail(ConnectionRefusedError(url))

    def get(self, url, **kwargs):
        return self.request("GET", url, **kwargs)

    def post(self, url, **kwargs):
        return self.request("POST", url, **kwargs)

    def delete(self, url, **kwargs):
        return self.request("DELETE", url, **kwargs)


def test_an_input_url_at_a_closed_port_fails_only_its_block():
    """A block reading a URL nobody answers fails with its reader once the retries are spent; other streams, /health and new blocks go on."""
    pair = WorkerPair(isolate_failures=True, client=refusing_client())
    pair.call("POST", "/blocks", json={"type": "simulated_instrument", "name": "near",
                                       "params": {"paced": False, "count": 20}})
    status, _, body = pair.call("POST", "/blocks", json={
        "type": "fft_block", "name": "far_fft",
        "inputs": [{"url": "http://127.0.0.1:9/blocks/gone", "kind": "iq"}]})
    assert status == 201, body
    near = json.loads(pair.call("POST", "/blocks/near/streams", json={})[2])["id"]
    far = json.loads(pair.call("POST", "/blocks/far_fft/streams", json={})[2])["id"]
    # Read each once, so that neither is closed as a stream nobody polled.
    pair.call("GET", f"/streams/{far}?after=-1&wait=0")
    pair.call("GET", f"/streams/{near}?after=-1&wait=0")
    pair.pump(60, 0.5)  # 30 s: the reader's 8 retries with backoff are spent
    health = body_of(pair.call("GET", "/health"))
    assert health["status"] == "ok"
    assert set(health["failed_blocks"]) == {"gone", "far_fft"}
    assert "did not answer after 9 attempts" in health["failed_blocks"]["far_fft"]
    status, _, body = pair.call("GET", f"/streams/{far}?after=-1&wait=0")
    assert status == 500 and b"did not answer" in body
    status, headers, body = pair.call("GET", f"/streams/{near}?after=-1&wait=0")
    assert status == 200 and decode_chunks(body)
    assert body_of(pair.call("GET", "/blocks/near"))["state"] == "active"
    assert body_of(pair.call("GET", "/blocks/far_fft"))["state"] == "failed"
    assert pair.call("POST", "/blocks", json={"type": "simulated_instrument",
                                              "name": "later"})[0] == 201
