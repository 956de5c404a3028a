"""
One client must not break a real worker: garbage requests and slowloris
connections while a stream is read.  The stream stays exact, every
garbage request gets a 4xx, and ``/health`` keeps answering; the figures
(requests by status class, chunks delivered of sent) are in the assertion
messages.
"""

import random
import socket
import threading
import time
from collections import Counter

import pytest

from pyrf_blocks.chunk import ChunkStreamDecoder

from stream_faults import compare_chunks, expected_chunks

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(90)]

#: A paced source: 600 chunks last 3 s, while the garbage flies.
SOURCE = {"paced": True, "seed": 5, "tones": [[1e4, -20.0]], "sample_rate": 51200.0,
          "samples_per_packet": 256, "packets_per_block": 1}


@pytest.fixture
def worker(stream_worker):
    return stream_worker


class StreamReader(threading.Thread):
    """
    Reads a stream to its end in a thread, as a client script would,
    resuming from its cursor; the chunks, and the error if any.
    """

    def __init__(self, worker, path):
        super().__init__(daemon=True)
        self.worker, self.path = worker, path
        self.chunks, self.error, self.polls = [], None, 0

    def run(self):
        try:
            after, ended = -1, False
            connection = self.worker.connection()
            while not ended:
                status, response, body = self.worker.call(
                    "GET", f"{self.path}?after={after}&wait=10", connection=connection)
                self.polls += 1
                assert status in (200, 204), (status, body)
                if status == 200:
                    decoder = ChunkStreamDecoder()
                    self.chunks += decoder.feed(body)
                    decoder.close()
                    after = self.chunks[-1].seq
                ended = response.getheader("X-Pyrf-End") == "1"
        except Exception as error:  # reported by the test
            self.error = error


def _garbage(rng):
    """
    One garbage request: (method, path, body, headers).  No valid block
    type is named, so nothing the fuzz makes can run.
    """
    methods = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS", "TRACE", "FOO"]
    # The stream being read is polled with malformed arguments only (a
    # DELETE of it, or a stop of its source, would be a valid request).
    paths = ["/", "/health", "/blocks", "/blocks/decoy", "/blocks/decoy/streams",
             "/blocks/decoy/stop", "/blocks/nowhere/finished", "/streams", "/streams/decoy:main:1?wait=0",
             "/streams/nope?after=abc", "/streams/src:main:1?after=-7&wait=1e9",
             "/streams/src:main:1?instance=zz", "/blocks/%00/x", "/" + "a" * 300,
             "/streams/src:main:99?after=1", "/blocks/decoy/streams?x=%ff"]
    bodies = [b"", b"{", b"[]", b"null", b"\x00\xff" * 20, b'{"type": 1}',
              b'{"type": "no_such_block", "params": {"x": 1}}',
              b'{"type": "nope", "inputs": [{"url": "http://127.0.0.1:1/blocks/x"}]}',
              b'{"output": 5}', b'{"outputs": ["main", "main"]}', b'{"key": "short"}',
              b'{"policy": "sometimes"}', b'{"maxsize": -1}', b'{"maxsize": 1e300}',
              b'[' * 40 + b']' * 40, b'"' + b"x" * 2000 + b'"',
              bytes(rng.getrandbits(8) for _ in range(rng.randrange(64)))]
    # (Not a body shorter than its Content-Length: a worker waiting for
    # the rest is the business of the request deadlines, tested apart.)
    headers = rng.choice([{}, {"Content-Type": "text/plain"}, {"X-" + "y" * 50: "z" * 500},
                          {"Accept": "*/*" * 100}])
    method, path = rng.choice(methods), rng.choice(paths)
    if path.startswith("/streams/src:main:1"):
        method = "GET"
    return method, path, rng.choice(bodies), headers


def _raw(worker, data):
    with socket.create_connection((worker.host, worker.port), timeout=10) as sock:
        sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_fuzz_garbage_requests_leave_a_stream_exact(worker):
    """Garbage requests of every kind while a stream is read: each is a 4xx, the stream arrives exact, /health says ok."""
    count, garbage = 600, 400
    worker.json("POST", "/blocks", {"type": "simulated_instrument", "name": "src",
                                    "params": dict(SOURCE, count=count)}, 201)
    worker.json("POST", "/blocks", {"type": "simulated_instrument", "name": "decoy",
                                    "params": dict(SOURCE, count=count)}, 201)
    opened = worker.json("POST", "/blocks/src/streams", {"maxsize": 16}, 201)
    reader = StreamReader(worker, opened["path"])
    reader.start()
    rng = random.Random(12)
    classes = Counter()
    requests = 0
    start = time.monotonic()
    while requests < garbage:
        for _ in range(50):
            method, path, body, headers = _garbage(rng)
            if rng.random() < 0.1:
                line = rng.choice([b"\x16\x03\x01\x00", b"GET\r\n\r\n", b"GET / HTTP/9.9\r\n\r\n",
                                   b"POST /blocks HTTP/1.1\r\nContent-Length: x\r\n\r\n"])
                answer = _raw(worker, line + b"\r\n\r\n")
                status = int(answer[9:12]) if answer.startswith(b"HTTP/1.") else 0
            else:
                try:
                    status, _, _ = worker.call(method, path, body, headers)
                except (ConnectionError, OSError):
                    status = 0  # the worker hung up: counted, and refused below
            classes[f"{status // 100}xx" if status else "no answer"] += 1
            requests += 1
    fuzzing = time.monotonic() - start
    reader.join(30)
    health = worker.json("GET", "/health")
    lost, duplicated, foreign = compare_chunks(reader.chunks, expected_chunks(
        count=count, **SOURCE))
    figures = (f"{requests} garbage requests in {fuzzing:.1f} s by status class "
               f"{dict(sorted(classes.items()))}; "
               f"stream: {len(reader.chunks)} of {count} chunks in {reader.polls} polls, "
               f"{lost} lost, {duplicated} duplicated, {foreign} foreign; reader error "
               f"{reader.error!r}; health {health}")
    print(figures)
    assert reader.error is None and not reader.is_alive(), figures
    assert (lost, duplicated, foreign) == (0, 0, 0), figures
    assert set(classes) <= {"2xx", "4xx"} and classes["4xx"] >= requests * 0.7, figures
    assert health["status"] == "ok", figures
    worker.call("DELETE", opened["path"])


def test_fuzz_slowloris_connections_do_not_stop_health(worker):
    """200 connections trickling their headers: /health still answers each time, quickly."""
    sockets, latencies = [], []
    try:
        for index in range(200):
            sock = socket.create_connection((worker.host, worker.port), timeout=10)
            sock.sendall(b"GET /health HTTP/1.1\r\nHost: w\r\nX-Slow-%d: " % index)
            sockets.append(sock)
        for round_ in range(5):
            for sock in sockets:
                sock.sendall(b"a")
            start = time.monotonic()
            assert worker.json("GET", "/health")["status"] == "ok"
            latencies.append(time.monotonic() - start)
            time.sleep(0.1)
    finally:
        for sock in sockets:
            sock.close()
    figures = (f"{len(sockets)} slowloris connections; /health answered {len(latencies)} "
               f"times, slowest in {max(latencies) * 1000:.1f} ms")
    print(figures)
    assert len(latencies) == 5 and max(latencies) < 2.0, figures
    assert worker.process.poll() is None, figures
