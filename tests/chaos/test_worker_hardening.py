"""
One client must not break a real worker: malformed and fuzzed requests get
4xx, never 5xx; requests trickling in are cut off; a block failing at run
time fails only itself and what depends on it.
"""

import json
import random
import socket
import time

import pytest

from net_real import RealWorker

pytestmark = pytest.mark.chaos


@pytest.fixture(scope="module")
def worker():
    worker = RealWorker(args=("--request-deadline", "1"))
    yield worker
    worker.stop()


def _poll(worker, ident, after=-1, wait=5):
    """``(status, last seq or None)`` of one poll of stream ``ident``."""
    status, response, _ = worker.call("GET", f"/streams/{ident}?after={after}&wait={wait}")
    last = response.getheader("X-Pyrf-Last-Seq")
    return status, None if last is None else int(last)


def _fuzz_requests(seed, count):
    """``count`` malformed requests (method, path, body) from a seeded generator."""
    rng = random.Random(seed)
    paths = ["/blocks", "/blocks/x", "/blocks/x/streams", "/streams", "/streams/x:main:1",
             "/health", "/blocks/%ff", "/streams/x?after=-5", "/streams/x?wait=1e999",
             "/" + "a/" * 50]
    pieces = [b"[", b"{", b'"', b"\\", b"}", b"]", b":", b",", b"1e999", b"NaN",
              b"\xff", b"null", b'"type"', b'"params"', b"-", b"0"]
    for _ in range(count):
        kind = rng.random()
        if kind < 0.2:
            body = b"[" * rng.randint(30, 5000)
        elif kind < 0.3:
            body = b'{"type": "fft_block", "params": ' + b"[" * rng.randint(30, 3000) + b"}"
        else:
            body = b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 60)))
        yield rng.choice(["GET", "POST", "DELETE", "PUT"]), rng.choice(paths), body


def test_worker_answers_deep_json_and_fuzz_with_4xx(worker):
    """980 nested '[' (a RecursionError in json.loads) gets 400; of 300 fuzzed requests none gets 5xx; /health stays ok."""
    status, _, answer = worker.call("POST", "/blocks", body=b"[" * 980,
                                    headers={"Content-Type": "application/json"})
    assert status == 400, answer
    assert "nested deeper than" in json.loads(answer)["error"]
    statuses = {}
    connection = worker.connection()
    for method, path, body in _fuzz_requests(seed=12, count=300):
        status, _, _ = worker.call(method, path, body=body, connection=connection)
        statuses[status // 100] = statuses.get(status // 100, 0) + 1
    connection.close()
    assert 5 not in statuses and statuses[4] > 200, statuses
    assert worker.json("GET", "/health")["status"] == "ok"


@pytest.mark.parametrize("head, trickle", [
    (b"GET /health HTTP/1.1\r\nHost: x\r\n", b"X-A: b\r\n"),
    (b"POST /blocks HTTP/1.1\r\nHost: x\r\nContent-Length: 200\r\n\r\n", b"{"),
])
def test_worker_cuts_off_requests_that_trickle_in(worker, head, trickle):
    """Headers or a body sent a few bytes at a time are answered 408 and cut off at the deadline (1 s here), while /health answers."""
    sock = socket.create_connection((worker.host, worker.port), timeout=10)
    started = time.monotonic()
    sock.sendall(head)
    answer = b""
    try:
        while time.monotonic() - started < 8:
            sock.sendall(trickle)
            sock.settimeout(0.2)
            try:
                data = sock.recv(4096)
            except socket.timeout:
                continue
            if not data:
                break
            answer += data
    except (BrokenPipeError, ConnectionResetError):
        pass
    finally:
        sock.close()
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert elapsed < 4, elapsed
    assert worker.json("GET", "/health")["status"] == "ok"


def test_worker_failing_block_fails_only_itself_and_its_dependents(worker):
    """A block failing at run time fails its streams and /finished; other streams, /health and new blocks go on."""
    free = {"paced": False, "samples_per_packet": 256, "packets_per_block": 4}
    worker.json("POST", "/blocks", {"type": "simulated_instrument", "name": "other",
                                    "params": free}, expect=201)
    worker.json("POST", "/blocks", {"type": "simulated_instrument", "name": "src",
                                    "params": free}, expect=201)
    worker.json("POST", "/blocks", {"type": "fft_block", "name": "fft", "inputs": ["src"],
                                    "params": {"size": 256}}, expect=201)
    worker.json("POST", "/blocks", {"type": "calibrate_block", "name": "cal",
                                    "inputs": ["fft"]}, expect=201)
    # A valid request that fails once running: dBm spectra into a calibration.
    worker.json("POST", "/blocks", {"type": "calibrate_block", "name": "bad",
                                    "inputs": ["cal"]}, expect=201)
    worker.json("POST", "/blocks", {"type": "collector", "name": "after_bad",
                                    "inputs": ["bad"]}, expect=201)
    other = worker.json("POST", "/blocks/other/streams", {}, expect=201)["id"]
    fft = worker.json("POST", "/blocks/fft/streams", {}, expect=201)["id"]
    deadline = time.monotonic() + 10
    while "bad" not in worker.json("GET", "/health")["failed_blocks"]:
        assert time.monotonic() < deadline, worker.json("GET", "/health")
        time.sleep(0.05)
    health = worker.json("GET", "/health")
    assert health["status"] == "ok"
    assert set(health["failed_blocks"]) == {"bad", "after_bad"}
    assert "needs linear power" in health["failed_blocks"]["bad"]
    assert worker.json("GET", "/blocks/bad")["state"] == "failed"
    assert worker.json("GET", "/blocks/cal")["failure"] is None
    status, _, answer = worker.call("GET", "/blocks/after_bad/finished?wait=0")
    assert status == 500 and b"needs linear power" in answer
    status, _, _ = worker.call("POST", "/blocks/bad/streams", {})
    assert status == 409
    for ident in (other, fft):
        status, last = _poll(worker, ident)
        assert status == 200 and last is not None, (ident, status)
        status, later = _poll(worker, ident, after=last)
        assert status == 200 and later > last, (ident, status)
    worker.json("POST", "/blocks", {"type": "simulated_instrument", "name": "new"},
                expect=201)
    new = worker.json("POST", "/blocks/new/streams", {}, expect=201)["id"]
    assert _poll(worker, new)[0] == 200
    for ident in (other, fft, new):
        worker.json("DELETE", f"/streams/{ident}")
    for name in ("after_bad", "bad", "cal", "fft", "src", "other", "new"):
        worker.json("DELETE", f"/blocks/{name}")
    assert worker.json("GET", "/blocks")["blocks"] == []
