"""
Cross-process edges with real processes on loopback: a worker subprocess,
child workers started by process(), and workers on two loopback addresses.
"""

import importlib.util
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from twisted.internet.task import Clock

from pyrf_blocks.blocks.dsp import calibrate_block, fft_block
from pyrf_blocks.blocks.sources import simulated_instrument
from pyrf_blocks.chunk import decode_chunks
from pyrf_blocks.graph import Graph
from pyrf_blocks.testing import recording_sink, run_clock

from net_real import ROOT, environment, read_line, real_workers, wait_gone

pytestmark = pytest.mark.timeout(180)

TOKEN = "test-token-0123456789"
SOURCE = {"paced": False, "seed": 7, "tones": [[1e6, -20.0]], "samples_per_packet": 256,
          "packets_per_block": 4}


@pytest.fixture(scope="module")
def two_hosts():
    """
    Two workers, on 127.0.0.2 and 127.0.0.3, with a token.
    """
    listens = [f"tcp:0:interface={address}" for address in ("127.0.0.2", "127.0.0.3")]
    with real_workers(listens, TOKEN) as workers:
        yield workers


@pytest.fixture
def worker(two_hosts):
    return two_hosts[0]


def local_chunks(count, **params):
    """
    What simulated_instrument(**params) emits in this process.
    """
    graph = Graph(Clock())
    sink = recording_sink(simulated_instrument(graph=graph, count=count, **params))
    run_clock(graph.reactor, graph)
    return sink.chunks


def read_stream(worker, path, after=-1, connection=None):
    """
    Poll ``path`` until its end; the chunks, in order.
    """
    chunks, ended = [], False
    while not ended:
        status, response, body = worker.call("GET", f"{path}?after={after}&wait=10",
                                             connection=connection)
        assert status in (200, 204), body
        if status == 200:
            chunks += decode_chunks(body)
            after = chunks[-1].seq
        ended = response.getheader("X-Pyrf-End") == "1"
    return chunks


def create(worker, name, type_name="simulated_instrument", inputs=(), **params):
    return worker.json("POST", "/blocks", {"type": type_name, "name": name,
                                           "inputs": list(inputs), "params": params}, 201)


def open_stream(worker, block, **spec):
    return worker.json("POST", f"/blocks/{block}/streams", spec, 201)["path"]


# The control API and the wire, with a worker in another process.

def test_a_real_worker_serves_exact_chunks(worker):
    """A stream read over loopback equals what the same source gives in this process."""
    create(worker, "exact", count=5, **SOURCE)
    chunks = read_stream(worker, open_stream(worker, "exact"))
    assert chunks == local_chunks(5, **SOURCE)


def test_a_real_worker_refuses_requests_without_the_token(worker):
    """Without the bearer token a request to a real worker gets 401."""
    status, _, body = worker.call("GET", "/health", token=False)
    assert status == 401 and b"bearer token" in body


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner,
                                                                 max_size=4),
    max_leaves=12)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
       path=st.sampled_from(["/blocks", "/blocks/none/streams", "/streams/999",
                             "/blocks/none", "/health", "/nowhere", "/blocks/%00/stop"]),
       method=st.sampled_from(["POST", "DELETE", "PUT", "PATCH"]))
def test_garbage_gets_a_4xx(worker, body, path, method):
    """Hypothesis-generated bodies on any route: always a 4xx JSON error, never a crash."""
    status, response, data = worker.call(method, path, body)
    assert 400 <= status < 500, (status, data)
    assert "error" in json.loads(data)


def raw_exchange(worker, data, close_early=False):
    """
    Send raw bytes; return what the worker answers before it closes the
    connection (each request says ``Connection: close``).
    """
    with socket.create_connection((worker.host, worker.port), timeout=20) as sock:
        sock.sendall(data)
        if close_early:
            return b""
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
        return answer


def test_truncated_bodies_and_oversized_headers_are_refused(worker):
    """Cut bodies, bodies over the limit and huge headers get 4xx; the worker lives on."""
    auth = f"Authorization: Bearer {TOKEN}\r\n".encode()
    spec = json.dumps({"type": "simulated_instrument", "name": "cut", "params": SOURCE}).encode()
    for cut in (1, len(spec) // 2, len(spec) - 1):
        answer = raw_exchange(worker, b"POST /blocks HTTP/1.1\r\nHost: w\r\nConnection: close\r\n" + auth +
                              b"Content-Length: %d\r\n\r\n" % cut + spec[:cut])
        assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
        assert b"malformed JSON body" in answer
        # Announce the whole body, send half of it and hang up.
        raw_exchange(worker, b"POST /blocks HTTP/1.1\r\nHost: w\r\nConnection: close\r\n" + auth +
                     b"Content-Length: %d\r\n\r\n" % len(spec) + spec[:cut], close_early=True)
    big = b"x" * (100 << 10)
    answer = raw_exchange(worker, b"POST /blocks HTTP/1.1\r\nHost: w\r\nConnection: close\r\n" + auth +
                          b"Content-Length: %d\r\n\r\n" % len(big) + big)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    headers = b"".join(b"X-Filler-%d: %s\r\n" % (i, b"y" * 200) for i in range(100))
    answer = raw_exchange(worker, b"GET /health HTTP/1.1\r\nHost: w\r\nConnection: close\r\n" + headers + b"\r\n")
    assert answer.startswith(b"HTTP/1.1 4"), answer[:200]
    answer = raw_exchange(worker, b"\x16\x03\x01garbage that is no request\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert worker.json("GET", "/health")["status"] == "ok"
    assert "cut" not in [b["name"] for b in worker.json("GET", "/blocks")["blocks"]]


def test_after_the_garbage_the_worker_still_streams_correctly(worker):
    """After garbage (here and in the tests above), a new chain still gives exact spectra."""
    assert raw_exchange(worker, b"\x00" * 64 + b"\r\n\r\n").startswith(b"HTTP/1.1 400")
    assert worker.call("POST", "/blocks", b"\x93\x01\x02")[0] == 400
    assert worker.call("POST", "/blocks", {"type": "fft_block", "inputs": [{"url": 1}]})[0] == 400
    create(worker, "after", count=4, **SOURCE)
    create(worker, "after_fft", "fft_block", ["after"], size=256)
    received = read_stream(worker, open_stream(worker, "after_fft"))
    graph = Graph(Clock())
    expected = recording_sink(fft_block(simulated_instrument(graph=graph, count=4, **SOURCE),
                                        size=256))
    run_clock(graph.reactor, graph)
    assert received == expected.chunks
    assert worker.process.poll() is None


def test_a_cut_connection_resumes_from_the_cursor(worker):
    """A poll cut mid-body is repeated with the same cursor: nothing lost or repeated."""
    create(worker, "resume", count=12, **SOURCE)
    path = open_stream(worker, "resume", maxsize=4)
    received, after = [], -1
    cuts = 0
    while True:
        if cuts < 3:
            # Read the status line and a few body bytes, then hang up.
            connection = worker.connection()
            connection.request("GET", f"{path}?after={after}&wait=10",
                               headers={"Authorization": f"Bearer {TOKEN}"})
            response = connection.getresponse()
            if response.status == 200:
                response.read(100)
                cuts += 1
            connection.close()
        status, response, body = worker.call("GET", f"{path}?after={after}&wait=10")
        if status == 200:
            received += decode_chunks(body)
            after = received[-1].seq
        if response.getheader("X-Pyrf-End") == "1":
            break
    assert cuts == 3
    assert [c.seq for c in received] == list(range(12))
    assert received == local_chunks(12, **SOURCE)


def test_a_slow_reader_pauses_a_free_running_source(worker):
    """Under block policy the worker's backlog and memory stay bounded for a slow reader."""
    params = dict(SOURCE, samples_per_packet=1024, packets_per_block=64)  # 512 KiB chunks
    create(worker, "flat_out", **params)
    path = open_stream(worker, "flat_out", maxsize=4)
    status, _, body = worker.call("GET", f"{path}?after=-1&wait=10")
    start_rss = worker.peak_rss_kib()
    after = decode_chunks(body)[-1].seq
    for _ in range(40):
        # The source runs flat out unless paused: give it the time to run away.
        time.sleep(0.01)
        block = worker.json("GET", "/blocks/flat_out")
        edge = block["edges"][0]
        stream = next(s for s in worker.json("GET", "/streams")["streams"]
                      if s["block"] == "flat_out")
        assert stream["backlog"] <= 4 and edge["depth"] <= edge["maxsize"]
        assert edge["chunks_in"] <= after + 1 + 4 + edge["maxsize"]
        status, _, body = worker.call("GET", f"{path}?after={after}&wait=10")
        after = decode_chunks(body)[-1].seq
    grown_mib = (worker.peak_rss_kib() - start_rss) / 1024
    print(f"peak RSS grew by {grown_mib:.1f} MiB while {after + 1} chunks of 512 KiB "
          "went through a slow reader")
    assert grown_mib < 16
    worker.call("DELETE", path)


@pytest.mark.parametrize("policy, maxsize", [("drop_oldest", 3), ("latest", None)])
def test_lossy_streams_count_drops_on_both_sides(worker, policy, maxsize):
    """A slow reader of a drop_oldest/latest stream sees the gaps; the worker counts them."""
    name = f"lossy_{policy}"
    create(worker, name, count=400, **SOURCE)
    path = open_stream(worker, name, policy=policy, maxsize=maxsize)
    received, after, dropped = [], -1, 0
    while True:
        status, response, body = worker.call("GET", f"{path}?after={after}&wait=10")
        if status == 200:
            received += decode_chunks(body)
            after = received[-1].seq
        dropped = int(response.getheader("X-Pyrf-Dropped"))
        if response.getheader("X-Pyrf-End") == "1":
            break
        time.sleep(0.005)  # a slow reader
    seqs = [c.seq for c in received]
    gaps = sum(b - a - 1 for a, b in zip([-1] + seqs, seqs))
    stats = next(s for s in worker.json("GET", "/streams")["streams"] if s["block"] == name)
    assert dropped > 0 and gaps == dropped == stats["dropped"]
    assert len(received) + dropped == 400


# process(), proc= and workers on other addresses.

def load_example():
    spec = importlib.util.spec_from_file_location("seed_multiprocess",
                                                  ROOT / "examples" / "seed_multiprocess.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def single_process_spectra(count):
    """
    The seed's two chains run in this process (on a task.Clock).
    """
    from pyrf_blocks import set_default_graph
    graph = Graph(Clock())
    previous = set_default_graph(graph)
    try:
        calibrate1, calibrate2 = load_example().build(False, count, False)
        sinks = [recording_sink(calibrate1), recording_sink(calibrate2)]
        run_clock(graph.reactor, graph)
    finally:
        set_default_graph(previous)
    return sinks


def children_of(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (FileNotFoundError, ProcessLookupError):
                pass
    return found


def test_the_split_seed_script_equals_the_single_process_run(tmp_path):
    """Two child processes give exactly the arrays and times of one reactor; none is left."""
    out = tmp_path / "split.npz"
    script = subprocess.Popen([sys.executable, "examples/seed_multiprocess.py", "--chunks", "12",
                               "--save", str(out)], cwd=ROOT, env=environment(),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    children = set()
    while script.poll() is None:
        children.update(children_of(script.pid))
        time.sleep(0.05)
    stdout, stderr = script.communicate()
    assert script.returncode == 0, stderr.decode()[-3000:]
    assert len(children) == 2
    assert all(wait_gone(pid) for pid in children), "a child worker outlived the script"
    split = np.load(out)
    for index, sink in enumerate(single_process_spectra(12), 1):
        assert sink.problems == []
        np.testing.assert_array_equal(split[f"spectra{index}"], sink.data())
        assert split[f"times{index}"].tolist() == [[c.start, c.end] for c in sink.chunks]
    assert b"chain 1: 192 spectra" in stdout


def driver(*args):
    return subprocess.Popen([sys.executable, "tests/net_drivers.py", *args], cwd=ROOT,
                            env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_killed_workers_and_parents_leave_nothing_behind():
    """SIGKILL on a child: retries logged, the run fails naming it; kill the parent: no orphan."""
    consumer = driver("kill")
    try:
        _, pid, url, other = read_line(consumer.stdout, 120).split()
        os.kill(int(pid), signal.SIGKILL)
        failed = read_line(consumer.stdout, 60)
        assert failed.startswith(f"FAILED: WorkerUnreachable: fft_block 'fft_block': "
                                 f"worker {url} did not answer after 4 attempts")
        assert wait_gone(int(pid))
        assert not wait_gone(int(other), timeout=0.2)  # the parent still holds it
        os.kill(consumer.pid, signal.SIGKILL)
        consumer.wait(30)
        assert wait_gone(int(other)), "the child worker outlived its killed parent"
    finally:
        consumer.kill()
        _, stderr = consumer.communicate()
    stderr = stderr.decode()
    assert f"child worker (pid {pid}) exited" in stderr
    assert f"worker {url} failed" in stderr and "retry 1 of 3 in 0.10 s" in stderr


def test_a_graph_split_over_two_hosts_equals_one_reactor(two_hosts, tmp_path):
    """fft on 127.0.0.2, calibrate on 127.0.0.3, the rest here: same output as one reactor, and nothing left on either worker."""
    host_a, host_b = (worker.url for worker in two_hosts)
    before = [sorted(b["name"] for b in worker.json("GET", "/blocks")["blocks"])
              for worker in two_hosts]
    out = tmp_path / "hosts.npz"
    consumer = driver("two_hosts", host_a, host_b, TOKEN, str(out), "10")
    stdout, stderr = consumer.communicate(timeout=120)
    assert consumer.returncode == 0, stderr.decode()[-3000:]
    graph = Graph(Clock())
    wsa = simulated_instrument(graph=graph, seed=1, count=10, paced=False, model="WSA4000")
    expected = recording_sink(calibrate_block(fft_block(wsa)))
    run_clock(graph.reactor, graph)
    result = np.load(out)
    np.testing.assert_array_equal(result["spectra"], expected.data())
    assert result["times"].tolist() == [[c.start, c.end] for c in expected.chunks]
    created_b = [line.split("created ", 1)[1] for line in two_hosts[1].stderr().splitlines()
                 if "created " in line]
    assert [line.split()[0] for line in created_b] == ["calibrate_block"]
    # The script removed what it made on both workers once it was done.
    after = [sorted(b["name"] for b in worker.json("GET", "/blocks")["blocks"])
             for worker in two_hosts]
    assert after == before


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_the_curl_example_of_the_docs_reads_a_stream(worker, tmp_path):
    """examples/read_stream.sh (curl + msgpack + numpy, no pyrf_blocks) reads exact chunks."""
    result = subprocess.run(["sh", str(ROOT / "examples" / "read_stream.sh")], cwd=tmp_path,
                            env=dict(os.environ, WORKER=worker.url, TOKEN=TOKEN),
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    expected = [f"seq {c.seq} iq complex64[1024] [{c.start}, {c.end}) ns rate {c.rate:g} "
                f"first {c.data[0]:.6g} centre {c.meta['center_frequency']:g} Hz"
                for c in local_chunks(3, paced=False, samples_per_packet=256,
                                      packets_per_block=4)]
    assert result.stdout.splitlines() == expected
    assert not any(s["block"] == "curl_wsa" for s in worker.json("GET", "/streams")["streams"])


PLACED_SOURCE = """
from pyrf_blocks import collector, fft_block, process, run, simulated_instrument
worker = process()
wsa = simulated_instrument(proc=worker, samples_per_packet=256, packets_per_block=4)
spectra = collector(fft_block(wsa, size=256))
run(duration=1.0)
print(len(spectra.chunks), spectra.finished)
"""


def test_stopping_the_graph_ends_a_source_placed_on_a_worker():
    """run(duration) ends a source that runs in a child worker: sinks finish, no child stays."""
    script = subprocess.Popen([sys.executable, "-c", PLACED_SOURCE], cwd=ROOT,
                              env=environment(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    children = set()
    while script.poll() is None:
        children.update(children_of(script.pid))
        time.sleep(0.05)
    stdout, stderr = script.communicate(timeout=60)
    assert script.returncode == 0, stderr.decode()[-3000:]
    count, finished = stdout.decode().split()
    assert int(count) > 0 and finished == "True"
    assert len(children) == 1
    assert all(wait_gone(pid) for pid in children)



PLACED_CHAIN = """
import json, sys, time
from pyrf_blocks import WSA4000, collector, fft_block, process, run
url, token, tag = sys.argv[1:] if len(sys.argv) > 1 else (None, None, "child")
place = process(url, token=token) if url else process()
# A first, finite run starts the worker and its FFT (scipy), so that the
# timed run below streams for most of its duration.
collector(fft_block(WSA4000("sim", proc=place, paced=False, count=1), proc=place))
run()
wsa = WSA4000("sim", proc=place, name=f"wsa_{tag}")
fft = fft_block(wsa, proc=place, name=f"fft_{tag}")
spectra = collector(fft)
there = collector(wsa, keep=1, proc=place, name=f"there_{tag}")  # a sink on the worker
started = time.monotonic()
run(duration=1.5)
elapsed = time.monotonic() - started
print(json.dumps({"elapsed": elapsed, "finished": [spectra.finished, there.finished],
                  "seqs": [c.seq for c in spectra.chunks],
                  "dropped": [fft.dropped, fft.remote_dropped]}))
"""


@pytest.mark.parametrize("where", ["child", "worker"])
def test_run_for_a_duration_ends_a_chain_placed_with_its_source(where, worker):
    """run(duration) with WSA4000 and fft_block placed together returns soon, every chunk here."""
    args = [] if where == "child" else [worker.url, TOKEN, "w"]
    script = subprocess.run([sys.executable, "-c", PLACED_CHAIN, *args], cwd=ROOT,
                            env=environment(), capture_output=True, timeout=60)
    assert script.returncode == 0, script.stderr.decode()[-3000:]
    result = json.loads(script.stdout.decode().splitlines()[-1])
    # Before the fix it never returned: nothing stopped a source placed on a
    # worker that only a block placed there read.
    assert result["elapsed"] < 1.5 + 10
    assert result["finished"] == [True, True]
    seqs = result["seqs"]
    # Every chunk the worker's fft_block emitted: from seq 0 with no gap, none
    # dropped there, and the end came from the worker (under the lossless
    # policy, after its last chunk), not cut short here with a warning.
    assert seqs == list(range(len(seqs))) and seqs and result["dropped"] == [0, 0]
    assert "could not end" not in script.stderr.decode()


PLACED_RECORDER = """
import sys
import numpy as np
from pyrf_blocks import Graph, process, record_block, run, set_default_graph, simulated_instrument
from pyrf_blocks.blocks.recording import sigmf_source
from pyrf_blocks.testing import recording_sink, run_clock
from twisted.internet.task import Clock
path = sys.argv[1]
graph = Graph()
set_default_graph(graph)
wsa = simulated_instrument(paced=False, count=6, seed=9, samples_per_packet=512,
                           packets_per_block=4, name="wsa")
local = recording_sink(wsa)
recorder = record_block(wsa, path=path, proc=process())
graph.run()
clock = Clock()
replay = Graph(clock)
played = recording_sink(sigmf_source(path, chunk_size=2048, graph=replay))
assert run_clock(clock, replay) is None
assert recorder.finished
np.testing.assert_array_equal(played.data(), local.data())
print(len(local.chunks), played.data().size)
"""


def test_a_recorder_placed_in_a_child_writes_what_this_process_produced(tmp_path):
    """record_block(proc=process()) records in the child; the file replays to the exact samples."""
    path = tmp_path / "capture"
    script = subprocess.run([sys.executable, "-c", PLACED_RECORDER, str(path)], cwd=ROOT,
                            env=environment(), capture_output=True, timeout=120)
    assert script.returncode == 0, script.stderr.decode()[-3000:]
    chunks, samples = script.stdout.decode().split()
    assert int(chunks) == 6 and int(samples) == 6 * 2048
    assert (tmp_path / "capture.sigmf-meta").exists()


# Sequence numbers and named outputs across a real process boundary.

SEQ_ACROSS = """
import json
from twisted.internet import reactor, task
from pyrf_blocks import Graph, collector, process, set_default_graph, simulated_instrument
from pyrf_blocks.net import remote_block
from pyrf_blocks.testing import slow_sink

graph = Graph()
set_default_graph(graph)
child = process()
wsa = simulated_instrument(proc=child, name="wsa", sample_rate=1e5, tones=[[1e4, -20.0]],
                           samples_per_packet=256, packets_per_block=1)
keeper = collector(wsa, keep=1, proc=child)  # runs the source in the child from the start
readers = {}

def join(_):
    readers["late"] = collector(wsa)
    lossy = remote_block(wsa.url, "iq", token=child.token, remote_policy="drop_oldest",
                         remote_maxsize=2)
    readers["lossy"] = (lossy, slow_sink(lossy, delay=0.02))  # so the stream must drop
    reactor.callLater(1.0, wsa.stopProducing)  # ends the source there: every stream ends

wsa.prepare().addCallback(lambda _: task.deferLater(reactor, 0.5, join, None))
graph.run()
lossy, slow = readers["lossy"]
print(json.dumps({
    "late": [[c.seq, c.start] for c in readers["late"].chunks], "late_dropped": wsa.dropped,
    "lossy": [[c.seq, c.start] for c in slow.chunks], "lossy_dropped": lossy.dropped,
    "lossy_remote_dropped": lossy.remote_dropped}))
"""


def test_seqs_cross_a_process_boundary_as_the_source_gave_them():
    """A source in a child: readers joining late, lossy or not, get the source's own seqs and honest drop counts."""
    script = subprocess.run([sys.executable, "-c", SEQ_ACROSS], cwd=ROOT, env=environment(),
                            capture_output=True, timeout=120)
    assert script.returncode == 0, script.stderr.decode()[-3000:]
    result = json.loads(script.stdout.decode().splitlines()[-1])
    period = 256 * 10 ** 9 // 10 ** 5  # ns per chunk: seq n starts at n periods
    late, lossy = result["late"], result["lossy"]
    assert all(start == seq * period for seq, start in late + lossy)
    late_seqs = [seq for seq, _ in late]
    assert late_seqs[0] > 0, "the reader did not join late"
    assert late_seqs == list(range(late_seqs[0], late_seqs[0] + len(late_seqs)))
    assert result["late_dropped"] == 0
    lossy_seqs = [seq for seq, _ in lossy]
    assert lossy_seqs[0] > 0 and lossy_seqs == sorted(set(lossy_seqs))
    gaps = sum(b - a - 1 for a, b in zip(lossy_seqs, lossy_seqs[1:]))
    assert result["lossy_dropped"] > 0
    assert result["lossy_dropped"] == result["lossy_remote_dropped"] >= gaps


TWO_OUTPUTS = """
import sys
import numpy as np
from pyrf_blocks import (Graph, collector, decimate_block, process, set_default_graph,
                         simulated_instrument)
from net_blocks import tee_power

graph = Graph()
set_default_graph(graph)
child = process(imports=["net_blocks"])
params = dict(count=8, paced=False, seed=7, tones=[[1e6, -20.0]], samples_per_packet=256,
              packets_per_block=4)
tee = tee_power(simulated_instrument(proc=child, **params), proc=child, name="tee")
main, power = collector(tee), collector(tee.output("power"))
# And the other way: the child reads the power output of a block of this process.
here = tee_power(simulated_instrument(name="here_wsa", **params), name="here")
back = collector(decimate_block(here.output("power"), factor=1, proc=child))
graph.run()
np.savez(sys.argv[1], main=main.data(), power=power.data(), back=back.data(),
         main_meta=np.array([(c.seq, c.start, c.end) for c in main.chunks]),
         power_meta=np.array([(c.seq, c.start, c.end) for c in power.chunks]))
"""


def test_both_outputs_of_a_block_in_a_child_arrive_each_on_its_stream(tmp_path, tee_power):
    """A two-output block placed in a child: each output arrives whole, with its own seqs (and a child reads one of ours)."""
    out = tmp_path / "outputs.npz"
    env = environment()
    env["PYTHONPATH"] += os.pathsep + str(ROOT / "tests")
    script = subprocess.run([sys.executable, "-c", TWO_OUTPUTS, str(out)], cwd=ROOT, env=env,
                            capture_output=True, timeout=120)
    assert script.returncode == 0, script.stderr.decode()[-3000:]
    graph = Graph(Clock())
    tee = tee_power(simulated_instrument(graph=graph, count=8, **SOURCE))
    main, power = recording_sink(tee), recording_sink(tee.output("power"))
    assert run_clock(graph.reactor, graph) is None
    result = np.load(out)
    np.testing.assert_array_equal(result["main"], main.data())
    np.testing.assert_array_equal(result["power"], power.data())
    assert result["main_meta"].tolist() == [[c.seq, c.start, c.end] for c in main.chunks]
    assert result["power_meta"].tolist() == [[c.seq, c.start, c.end] for c in power.chunks]
    assert [c.seq for c in power.chunks] == [0, 1, 2, 3]
    np.testing.assert_array_equal(result["back"], power.data())
