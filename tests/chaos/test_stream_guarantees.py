"""
What a reader of a real worker may rely on when things are slow or break:
a slow reader loses nothing while the worker's backlog stays capped; a
reader whose answers are cut mid-body resumes from its cursor with exact
chunks; a script whose worker is SIGKILLed fails cleanly and quickly,
naming the worker.  The figures are in the assertion messages.
"""

import signal
import subprocess
import sys
import textwrap
import time

import pytest

from pyrf_blocks.chunk import ChunkStreamDecoder
from pyrf_blocks.errors import ChunkDecodeError
from pyrf_blocks.testing import poll_until

from net_real import ROOT, environment
from stream_faults import compare_chunks, expected_chunks

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(90)]

SOURCE = {"paced": False, "seed": 9, "tones": [[1e6, -20.0]], "samples_per_packet": 256,
          "packets_per_block": 4}


def _source(worker, name, count):
    worker.json("POST", "/blocks", {"type": "simulated_instrument", "name": name,
                                    "params": dict(SOURCE, count=count)}, 201)


def _rss_kib(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_stream_a_slow_reader_loses_nothing_and_the_backlog_stays_capped(stream_worker):
    """A reader ten times slower than the source: every chunk arrives, the backlog never exceeds its cap."""
    worker, count, maxsize = stream_worker, 300, 16
    _source(worker, "slow_read", count)
    opened = worker.json("POST", "/blocks/slow_read/streams", {"maxsize": maxsize}, 201)
    connection = worker.connection()
    chunks, after, ended, backlogs = [], -1, False, []
    rss = [_rss_kib(worker.process.pid)]
    while not ended:
        status, response, body = worker.call("GET", f"{opened['path']}?after={after}&wait=10",
                                             connection=connection)
        assert status in (200, 204), body
        if status == 200:
            decoder = ChunkStreamDecoder()
            chunks += decoder.feed(body)
            after = chunks[-1].seq
        ended = response.getheader("X-Pyrf-End") == "1"
        stats = worker.json("GET", "/streams")["streams"]
        backlogs += [s["backlog"] for s in stats if s["id"] == opened["id"]]
        rss.append(_rss_kib(worker.process.pid))
        time.sleep(0.01)  # a slow reader
    lost, duplicated, foreign = compare_chunks(chunks, expected_chunks(count=count, **SOURCE))
    figures = (f"{len(chunks)} of {count} chunks, {lost} lost, {duplicated} duplicated, "
               f"{foreign} foreign; backlog at most {max(backlogs)} (cap {maxsize}); worker "
               f"RSS {rss[0] / 1024:.0f} -> peak {max(rss) / 1024:.0f} -> "
               f"{rss[-1] / 1024:.0f} MiB")
    print(figures)
    assert (lost, duplicated, foreign) == (0, 0, 0), figures
    assert max(backlogs) <= maxsize, figures
    assert max(rss) - rss[0] < 64 << 10, figures
    worker.call("DELETE", opened["path"])


def test_stream_answers_cut_mid_body_resume_exactly(stream_worker):
    """A raw reader whose every answer is cut after a few kilobytes resumes from its cursor: exact chunks."""
    worker, count = stream_worker, 200
    _source(worker, "cut_raw", count)
    opened = worker.json("POST", "/blocks/cut_raw/streams", {"maxsize": 64}, 201)
    chunks, after, ended, cuts = [], -1, False, 0
    while not ended:
        connection = worker.connection()
        connection.request("GET", f"{opened['path']}?after={after}&wait=10")
        response = connection.getresponse()
        assert response.status in (200, 204), response.read()
        ended = response.getheader("X-Pyrf-End") == "1"
        decoder = ChunkStreamDecoder()
        piece = response.read(20000 + 7 * cuts % 9000)  # then hang up mid-body
        if response.length:
            cuts += 1
            ended = False
        connection.close()
        try:
            chunks += decoder.feed(piece)
        except ChunkDecodeError:
            pass
        if chunks:
            after = chunks[-1].seq
    lost, duplicated, foreign = compare_chunks(chunks, expected_chunks(count=count, **SOURCE))
    figures = (f"{len(chunks)} of {count} chunks through {cuts} answers cut mid-body: {lost} "
               f"lost, {duplicated} duplicated, {foreign} foreign")
    print(figures)
    assert (lost, duplicated, foreign) == (0, 0, 0) and cuts >= 10, figures
    worker.call("DELETE", opened["path"])


READER = textwrap.dedent("""
    import sys
    from pyrf_blocks import Graph, collector
    from pyrf_blocks.net import remote_block

    graph = Graph()
    seen = collector(remote_block(sys.argv[1], "iq", graph=graph, retries=int(sys.argv[2])),
                     graph=graph, keep=1)
    print("reading", flush=True)
    graph.run()
""")


def test_stream_a_killed_worker_fails_the_reading_script_cleanly_and_quickly():
    """SIGKILL on the worker a script reads: the script exits non-zero within seconds, naming the worker."""
    from net_real import RealWorker

    worker = RealWorker()
    try:
        worker.json("POST", "/blocks", {"type": "simulated_instrument", "name": "src",
                                        "params": dict(SOURCE, paced=True)}, 201)
        # 4 retries (1.5 s of backoff), not the default 8 (9 s; the script
        # then exits 12 s after the kill), to keep the chaos section short.
        script = subprocess.Popen([sys.executable, "-c", READER, f"{worker.url}/blocks/src", "4"],
                                  cwd=ROOT, env=environment(), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        assert script.stdout.readline().strip() == b"reading"
        poll_until(lambda: worker.json("GET", "/streams")["streams"], 20,
                   "the script to open its stream")
        time.sleep(0.3)
        worker.process.send_signal(signal.SIGKILL)
        killed = time.monotonic()
        try:
            _, stderr = script.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            script.kill()
            _, stderr = script.communicate()
        elapsed = time.monotonic() - killed
    finally:
        worker.stop()
    stderr = stderr.decode("utf-8", "replace")
    figures = (f"script exited {script.returncode} {elapsed:.1f} s after the kill; last "
               f"line: {stderr.strip().splitlines()[-1] if stderr.strip() else ''!r}")
    print(figures)
    assert script.returncode not in (0, None) and elapsed < 10, figures
    assert "WorkerUnreachable" in stderr and worker.url in stderr, figures
