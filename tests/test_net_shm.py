"""
Shared-memory rings under the streams between processes of one host: the
ring itself, a real worker's streams with and without it, and processes
killed while they use it.
"""

import os
import signal
import subprocess
import sys
import textwrap

import msgpack
import numpy as np
import pytest

from pyrf_blocks.chunk import ChunkStreamDecoder, decode_chunks
from pyrf_blocks.errors import ChunkDecodeError
from pyrf_blocks.net import shm
from pyrf_blocks.net.client import remote_block
from pyrf_blocks.graph import Graph

from net_real import ROOT, RealWorker, environment, read_line, wait_gone
from test_net_processes import SOURCE, create, local_chunks

pytestmark = [pytest.mark.timeout(120),
              pytest.mark.skipif(not shm.available(), reason="no memfd_create here")]


def rings_of(pid):
    """
    The descriptors of ``pid`` that are stream rings.
    """
    found = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").startswith("/memfd:pyrf-blocks-stream"):
                found.append(int(fd))
        except FileNotFoundError:
            pass
    return found


def named_segments():
    """
    What this project could have left in ``/dev/shm``: files with ``pyrf``
    in their names.  Other programs on the machine make and remove their
    own entries meanwhile, and so do compute pools of tests running at
    once: a :class:`~pyrf_blocks.parallel.ProcessPool` keeps its segments
    in a ``pyrf-blocks-`` folder there until it closes, which a stream's
    ring, a single segment, never makes.
    """
    if not os.path.isdir("/dev/shm"):
        return set()
    return {entry.name for entry in os.scandir("/dev/shm")
            if "pyrf" in entry.name.lower() and not entry.is_dir(follow_symlinks=False)}


def mapped_rings(pid):
    """
    How many stream rings ``pid`` maps (a reader maps each twice: its
    header page writable, its arrays read-only).
    """
    with open(f"/proc/{pid}/maps") as maps:
        return len({line.split()[4] for line in maps if "memfd:pyrf-blocks-stream" in line})


def test_a_ring_hands_out_slots_first_in_first_out_and_refuses_when_full():
    """Slots follow each other, wrap to the start once the oldest are released, and a full ring says no."""
    ring = shm.Ring(4096)
    try:
        arrays = [np.full(1000, n, np.uint8) for n in range(5)]
        slots = [ring.put(array, seq) for seq, array in enumerate(arrays[:4])]
        assert [slot[1] for slot in slots] == [1000] * 4
        assert [b - a for (a, _), (b, _) in zip(slots, slots[1:])] == [1024] * 3
        assert ring.put(arrays[4], 4) is None  # full
        ring.acknowledged(0)  # (a reader that does not map it)
        wrapped = ring.put(arrays[4], 4)
        assert wrapped == slots[0]  # back at the start
        reader = shm.RingReader(ring.describe())
        try:
            for (offset, nbytes), array in zip([wrapped] + slots[1:], [arrays[4]] + arrays[1:4]):
                view = reader.read(offset, nbytes, np.dtype(np.uint8), nbytes)
                np.testing.assert_array_equal(view, array)
                assert not view.flags.writeable and not view.flags.owndata
        finally:
            reader.close()
    finally:
        ring.close()


def test_a_held_view_keeps_its_slot_and_the_producer_never_overwrites_it():
    """Zero-copy reads: a slot is reused only once every view of its delivered chunk is gone, in seq order."""
    ring = shm.Ring(4096)
    reader = shm.RingReader(ring.describe())
    try:
        u8 = np.dtype(np.uint8)
        views = []
        for seq in range(4):
            offset, nbytes = ring.put(np.full(1000, seq, np.uint8), seq)
            view = reader.read(offset, nbytes, u8, nbytes)
            reader.delivered(view, seq)
            views.append(view[10:])  # a view of the view holds the slot too
        del view
        assert ring.put(np.full(1000, 9, np.uint8), 4) is None  # full: nothing released
        views[1] = views[2] = None  # released out of order: 0 still held
        assert ring.put(np.full(1000, 9, np.uint8), 4) is None
        assert ring.released == -1
        views[0] = None
        assert ring.released == 2
        offset, _ = ring.put(np.full(1000, 4, np.uint8), 4)  # where seq 0 was
        assert offset == shm._HEADER
        np.testing.assert_array_equal(views[3], 3)  # still intact
        # Decoded but never delivered (a repeat of a delivered chunk): it
        # releases nothing.
        stray = reader.read(offset, 1000, u8, 1000)
        del stray
        assert ring.released == 2
    finally:
        reader.close()
        ring.close()
    np.testing.assert_array_equal(views[3], 3)  # mapped until the last view goes


def test_a_block_writes_its_output_into_the_ring_lent_by_its_stream():
    """The stream's ring lends the block's buffer: emitting places it without a copy, and its reader sees the bytes."""
    from pyrf_blocks.net.stream import ServedStream
    from pyrf_blocks.testing import WorkerPair, manual_source
    from pyrf_blocks.blocks.dsp import calibrate_block

    pair = WorkerPair()
    source = manual_source("spectrum", graph=pair.server, name="src")
    calibrated = calibrate_block(source, graph=pair.server, name="cal")
    stream = ServedStream("1", calibrated, pair.clock, maxsize=64, shared=True)
    try:
        lent = calibrated.buffer((4, 8))
        assert lent.base.__class__ is shm._View and stream.ring.used > 0
        del lent
        stream.ring.reclaim()
        assert stream.ring.used == 0  # let go unused: free again
    finally:
        stream.close()
    assert calibrated.buffer((4, 8)).base is None  # the stream's lending ended with it


class _Request:
    """The little of a twisted.web request a served stream uses; push producers only."""

    def __init__(self):
        from twisted.internet import defer

        self.args, self.written, self.finished = {}, [], False
        self._done = defer.Deferred()

    def setHeader(self, name, value):
        pass

    def setResponseCode(self, code):
        self.code = code

    def registerProducer(self, producer, streaming):
        assert streaming

    def unregisterProducer(self):
        pass

    def write(self, data):
        self.written.append(data)

    def finish(self):
        self.finished = True

    def notifyFinish(self):
        return self._done


def test_a_reader_that_keeps_its_chunks_holds_the_block_then_gets_the_body():
    """A full ring: the chunk goes in the body, the answer ends, the block waits RING_PATIENCE, then the body until released."""
    from pyrf_blocks.chunk import ChunkStreamDecoder
    from pyrf_blocks.net import stream as streams
    from pyrf_blocks.net.stream import ServedStream
    from pyrf_blocks.testing import WorkerPair, manual_source

    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    stream = ServedStream("1", source, pair.clock, maxsize=256, max_backlog_bytes=256 << 20,
                          shared=True)
    reader = shm.RingReader(stream.ring.describe())
    try:
        assert stream.ring.size == shm.RING_SIZE
        request = _Request()
        stream.poll(request, -1, 10, linger=30.0, shared=True)
        chunk = 4 << 20
        fits = shm.RING_SIZE // chunk
        for _ in range(fits):
            source.push(chunk // 8)
            pair.clock.advance(0)  # the answer writes each in a later turn
        assert not request.finished and not stream.stats["paused"]
        decoder = ChunkStreamDecoder(ring=reader)
        held = decoder.feed(b"".join(request.written))
        assert [c.seq for c in held] == list(range(fits))
        for c in held:
            reader.delivered(c.data, c.seq)  # and kept: nothing released
        source.push(chunk // 8)  # finds the ring full: in the body, and the answer ends
        pair.clock.advance(0)
        assert request.finished and stream.stats["paused"]
        assert stream.stats["chunks_shared"] == fits and stream.stats["chunks_out"] == fits + 1
        for _ in range(int(streams.RING_PATIENCE / streams.RING_CHECK) // 2):
            pair.clock.advance(streams.RING_CHECK)
        assert stream.stats["paused"]  # it waits for the reader
        pair.clock.advance(streams.RING_PATIENCE)
        assert not stream.stats["paused"]  # then goes on, in the body
        # Nothing was overwritten while held: each chunk is the samples pushed.
        for c in held:
            np.testing.assert_array_equal(
                c.data, np.arange(c.seq * (chunk // 8), (c.seq + 1) * (chunk // 8)))
        del c
        held = None  # released: its slots come back, the next chunks are shared again
        assert stream.ring.released == fits - 1
        request = _Request()
        stream.poll(request, fits, 10, shared=True)
        pair.clock.advance(streams.RING_PATIENCE)
        source.push(chunk // 8)
        pair.clock.advance(0)
        assert stream.stats["chunks_shared"] == fits + 1
    finally:
        stream.close()
        reader.close()


def test_chunks_released_in_the_ring_let_a_held_block_go_on_without_a_poll():
    """Released in the ring is acknowledged: a full window holds the block only until the reader releases half of it, with no new poll, and never when it released already."""
    from pyrf_blocks.chunk import ChunkStreamDecoder
    from pyrf_blocks.net import stream as streams
    from pyrf_blocks.net.stream import ServedStream
    from pyrf_blocks.testing import WorkerPair, manual_source

    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    stream = ServedStream("1", source, pair.clock, maxsize=8, shared=True)
    reader = shm.RingReader(stream.ring.describe())
    try:
        request = _Request()
        stream.poll(request, -1, 10, linger=30.0, shared=True)
        decoder = ChunkStreamDecoder(ring=reader)
        for _ in range(8):
            source.push(1024)
            pair.clock.advance(0)
        # Half the window went in the answer, which ended; the window is full.
        assert request.finished and stream.stats["paused"]
        chunks = decoder.feed(b"".join(request.written))
        assert [c.seq for c in chunks] == [0, 1, 2, 3]
        for c in chunks:
            reader.delivered(c.data, c.seq)
        del c
        pair.clock.advance(streams.RING_CHECK)
        assert stream.stats["paused"]  # delivered but kept: still held
        chunks = None  # let go: released in the ring
        pair.clock.advance(streams.RING_CHECK)
        assert not stream.stats["paused"] and stream.acknowledged == 3  # and no poll came
        request = _Request()
        stream.poll(request, 3, 10, linger=30.0, shared=True)
        pair.clock.advance(0)
        chunks = decoder.feed(b"".join(request.written))
        assert [c.seq for c in chunks] == [4, 5, 6, 7]  # each once, in order
        for c in chunks:
            reader.delivered(c.data, c.seq)
        del c
        chunks = None  # released at once, as a sink that keeps nothing does
        for _ in range(4):  # the window fills again, but what was released counts
            source.push(1024)
            pair.clock.advance(0)
        assert not stream.stats["paused"] and stream.acknowledged == 7
        request = _Request()
        stream.poll(request, 7, 10, shared=True)
        pair.clock.advance(0)
        assert [c.seq for c in decoder.feed(b"".join(request.written))] == [8, 9, 10, 11]
    finally:
        stream.close()
        reader.close()


def test_a_reader_that_releases_its_chunks_reads_on_in_one_answer():
    """Released in the ring is not in flight: a lingering answer to a reader that lets its chunks go carries many windows, in order, each chunk once, with no poll."""
    from pyrf_blocks.chunk import ChunkStreamDecoder
    from pyrf_blocks.net.stream import ServedStream
    from pyrf_blocks.testing import WorkerPair, manual_source

    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    stream = ServedStream("1", source, pair.clock, maxsize=8, max_backlog_bytes=64 << 10,
                          shared=True)
    reader = shm.RingReader(stream.ring.describe())
    try:
        request = _Request()
        stream.poll(request, -1, 10, linger=30.0, shared=True)
        decoder = ChunkStreamDecoder(ring=reader)
        seqs = []
        for n in range(40):  # five windows in chunks; 20 in bytes (4 KiB each)
            source.push(512)
            pair.clock.advance(0)
            chunks = decoder.feed(b"".join(request.written))
            request.written.clear()
            for c in chunks:
                reader.delivered(c.data, c.seq)
                np.testing.assert_array_equal(c.data, np.arange(c.seq * 512, (c.seq + 1) * 512))
                seqs.append(c.seq)
            del chunks
            c = None  # let go at once: released in the ring
        assert seqs == list(range(40))
        assert not request.finished and not stream.stats["paused"]
        assert stream.acknowledged == 39 and stream.stats["chunks_shared"] == 40
        # One that keeps what it got has its answer ended at half the window.
        kept = []
        for _ in range(8):
            source.push(512)
            pair.clock.advance(0)
            kept.extend(decoder.feed(b"".join(request.written)))
            request.written.clear()
        assert request.finished and [c.seq for c in kept] == list(range(40, 44))
    finally:
        stream.close()
        reader.close()


def test_a_held_block_looks_at_the_ring_less_often_while_nothing_is_released():
    """A held block looks 1 ms after it is held and 1 ms later, then ever less often while its reader releases nothing (at most RELEASE_CHECK_MAX apart), and goes on within that of the release."""
    from pyrf_blocks.chunk import ChunkStreamDecoder
    from pyrf_blocks.net import stream as streams
    from pyrf_blocks.net.stream import ServedStream
    from pyrf_blocks.testing import WorkerPair, manual_source

    pair = WorkerPair()
    source = manual_source(graph=pair.server, name="src")
    stream = ServedStream("1", source, pair.clock, maxsize=8, shared=True)
    reader = shm.RingReader(stream.ring.describe())
    looks = []
    check = stream._check_released
    stream._check_released = lambda: (looks.append(pair.clock.seconds()), check())
    try:
        request = _Request()
        stream.poll(request, -1, 10, linger=30.0, shared=True)
        for _ in range(8):
            source.push(1024)
            pair.clock.advance(0)
        assert stream.stats["paused"]
        held = pair.clock.seconds()
        chunks = ChunkStreamDecoder(ring=reader).feed(b"".join(request.written))
        for c in chunks:
            reader.delivered(c.data, c.seq)
        del c
        for _ in range(1000):  # 100 ms of a reader that keeps what it got
            pair.clock.advance(0.0001)
        assert stream.stats["paused"]
        gaps = np.diff([held] + looks)
        assert gaps[:2] == pytest.approx([streams.RING_CHECK] * 2, abs=2e-4)
        step = 0.0002  # (the clock advances 0.1 ms at a time)
        assert all(b >= a - step for a, b in zip(gaps, gaps[1:]))
        assert max(gaps) <= streams.RELEASE_CHECK_MAX + step and len(looks) < 20
        chunks = None  # released
        for _ in range(int(streams.RELEASE_CHECK_MAX / 0.0001) + 1):
            pair.clock.advance(0.0001)
        assert not stream.stats["paused"] and stream.acknowledged == 3
    finally:
        stream.close()
        reader.close()


def test_a_ring_is_private_unnamed_and_checked_by_its_nonce():
    """Mode 0600, nothing in /dev/shm, and a reader refuses a ring whose nonce or slots are wrong."""
    # Only this test's ring is in question: an earlier test's graph may
    # still be mapping its worker's rings here (kept alive by the log
    # events Twisted holds until logging begins, which a test run never
    # begins).
    earlier = set(rings_of(os.getpid()))
    ring = shm.Ring(1 << 16)
    try:
        assert os.fstat(ring.fd).st_mode & 0o777 == 0o600
        # An anonymous memfd: no name on any file system.
        assert os.readlink(f"/proc/self/fd/{ring.fd}").startswith("/memfd:pyrf-blocks-stream")
        assert named_segments() == set()
        forged = dict(ring.describe(), nonce="00" * 16)
        with pytest.raises(ValueError, match="nonce differs"):
            shm.RingReader(forged)
        with pytest.raises(OSError):
            shm.RingReader(dict(ring.describe(), fd=999999))
        reader = shm.RingReader(ring.describe())
        try:
            with pytest.raises(ValueError, match="outside the ring"):
                reader.read(shm._HEADER + ring.size - 64, 128, np.dtype(np.uint8), 128)
            with pytest.raises(ValueError, match="outside the ring"):
                reader.read(shm._HEADER - 64, 64, np.dtype(np.uint8), 64)  # the header
            with pytest.raises(ValueError, match="does not hold"):
                reader.read(shm._HEADER, 100, np.dtype(np.complex64), 100)
        finally:
            reader.close()
    finally:
        ring.close()
    assert set(rings_of(os.getpid())) <= earlier


def test_a_chunk_that_names_shared_memory_is_refused_on_a_stream_that_did_not_ask():
    """A body with a ring reference, decoded without a ring, is a clear decode error."""
    from pyrf_blocks.chunk import Chunk, encode_chunk_shared
    chunk = Chunk("iq", np.ones(16, np.complex64), 0, 16, 1.0)
    body, _ = encode_chunk_shared(chunk, lambda array: (64, array.nbytes))
    with pytest.raises(ChunkDecodeError, match="did not ask"):
        decode_chunks(body)


def test_a_local_reader_gets_heads_in_the_body_and_the_samples_in_the_ring():
    """Over shm the answer carries only heads, the chunks equal the inline ones, and DELETE frees the ring."""
    worker = RealWorker()
    try:
        create(worker, "src", count=6, **SOURCE)
        answer = worker.json("POST", "/blocks/src/streams", {"shm": True}, 201)
        assert set(answer["shm"]) == {"pid", "fd", "size", "nonce"}
        assert answer["shm"]["pid"] == worker.process.pid
        reader = shm.RingReader(answer["shm"])
        try:
            status, _, body = worker.call("GET", f"{answer['path']}?after=-1&wait=10&shm=1")
            assert status == 200
            decoder = ChunkStreamDecoder(ring=reader)
            shared = decoder.feed(body)
            decoder.close()
            assert len(body) < 400 * len(shared)  # heads only: a chunk's samples are 8 KiB
            # The same stream answers a reader that does not map it in the body.
            status, _, inline = worker.call("GET", f"{answer['path']}?after=-1&wait=10")
            assert status == 200 and len(inline) > 8192 * len(shared)
            assert decode_chunks(inline) == shared
        finally:
            reader.close()
        expected = local_chunks(6, **SOURCE)
        assert shared == expected[:len(shared)]
        assert rings_of(worker.process.pid) != []
        worker.json("DELETE", answer["path"])
        assert rings_of(worker.process.pid) == []
        # A lossy stream keeps nothing in shared memory: its oldest may go unread.
        create(worker, "other", count=6, **SOURCE)
        lossy = worker.json("POST", "/blocks/other/streams",
                            {"shm": True, "policy": "latest"}, 201)
        assert "shm" not in lossy
    finally:
        worker.stop()


def test_a_reader_asking_for_short_heads_gets_them_with_the_meta_once_per_answer():
    """With shm=2 each chunk in the ring is a short head; only an answer's first carries the meta; the chunks equal the inline ones."""
    from pyrf_blocks.chunk import SHORT_HEAD
    worker = RealWorker()
    try:
        create(worker, "src", count=6, **SOURCE)
        answer = worker.json("POST", "/blocks/src/streams", {"shm": True}, 201)
        reader = shm.RingReader(answer["shm"])
        try:
            status, _, body = worker.call("GET", f"{answer['path']}?after=-1&wait=10&shm=2")
            assert status == 200 and body[0] == SHORT_HEAD
            decoder = ChunkStreamDecoder(ring=reader)
            short = decoder.feed(body)
            decoder.close()
            status, _, heads = worker.call("GET", f"{answer['path']}?after=-1&wait=10&shm=1")
            assert status == 200 and heads[0] != SHORT_HEAD
            assert len(short) >= 2 and len(body) < len(heads)
            # 66 bytes a head ("iq", "<c8", one axis), the first with the
            # meta (its length, then the map), the others without.
            assert body[1] == 1
            assert len(body) == 66 * len(short) + 4 + len(msgpack.packb(short[0].meta))
            decoder = ChunkStreamDecoder(ring=reader)
            assert decoder.feed(heads)[:len(short)] == short
            status, _, _ = worker.call("GET", f"{answer['path']}?after=-1&wait=0&shm=3")
            assert status == 400
        finally:
            reader.close()
        assert short == local_chunks(6, **SOURCE)[:len(short)]
    finally:
        worker.stop()


def test_a_worker_that_cannot_offer_shared_memory_streams_in_the_body():
    """With shared memory switched off on the worker, a local reader asking for it gets the body, unchanged."""
    worker = RealWorker(env={shm.ENVIRONMENT_SWITCH: "0"})
    try:
        create(worker, "src", count=4, **SOURCE)
        answer = worker.json("POST", "/blocks/src/streams", {"shm": True}, 201)
        assert "shm" not in answer
        status, _, body = worker.call("GET", f"{answer['path']}?after=-1&wait=10&shm=1")
        assert status == 200
        assert decode_chunks(body) == local_chunks(4, **SOURCE)[:len(decode_chunks(body))]
    finally:
        worker.stop()


def test_a_reader_that_cannot_map_the_ring_falls_back_to_the_body():
    """remote_block keeps no ring (and polls without shm=1) when the one offered cannot be mapped."""
    block = remote_block("http://127.0.0.1:1/blocks/x", "iq", graph=Graph())
    assert block.wants_shared_memory()
    block._map({"pid": os.getpid(), "fd": 999999, "size": 4096, "nonce": "00" * 16})
    assert block._ring is None
    block._map({"pid": "nonsense"})
    assert block._ring is None
    assert not remote_block("http://10.1.2.3:8750/blocks/x", "iq",
                            graph=Graph()).wants_shared_memory()
    assert not remote_block("http://127.0.0.1:1/blocks/x", "iq", remote_policy="latest",
                            graph=Graph()).wants_shared_memory()


_CONSUMER = textwrap.dedent("""
    import sys
    from pyrf_blocks import Graph
    from pyrf_blocks.net import remote_block
    from pyrf_blocks.blocks.sinks import collector
    class say(collector):
        def compute(self, chunk):
            print(chunk.seq, flush=True)
    graph = Graph()
    stand_in = remote_block(sys.argv[1], "iq", graph=graph)
    say(stand_in)
    graph.run()
""")


@pytest.mark.chaos
def test_killing_the_reader_loses_nothing_it_acknowledged_and_frees_the_ring():
    """SIGKILL of a reader over shm: its stream resumes from the cursor with nothing lost; closing it frees the ring."""
    worker = RealWorker()
    count = 400
    params = dict(SOURCE, samples_per_packet=1024, packets_per_block=16)
    try:
        create(worker, "src", count=count, **params)
        consumer = subprocess.Popen([sys.executable, "-c", _CONSUMER,
                                     f"{worker.url}/blocks/src"],
                                    cwd=ROOT, env=environment(), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
        try:
            seqs = [int(read_line(consumer.stdout, 60)) for _ in range(20)]
            os.kill(consumer.pid, signal.SIGKILL)
            consumer.wait(30)
        finally:
            consumer.kill()
            # What it printed before it died, beyond what was read above.
            seqs += [int(line) for line in consumer.communicate()[0].split()]
        assert seqs == list(range(len(seqs)))
        streams = worker.json("GET", "/streams")["streams"]
        assert len(streams) == 1 and streams[0]["shared"] and streams[0]["chunks_shared"] > 0
        path = f"/streams/{streams[0]['id']}"
        # It acknowledged (by polling, or by releasing their slots in the
        # ring) only chunks its consumer got; everything after its last
        # acknowledgement is still there, intact.
        acknowledged = streams[0]["acknowledged"]
        assert acknowledged <= seqs[-1]
        from test_net_processes import read_stream
        rest = read_stream(worker, path, after=acknowledged)
        expected = local_chunks(count, **params)
        assert rest == expected[acknowledged + 1:]
        worker.json("DELETE", path)
        assert rings_of(worker.process.pid) == []
    finally:
        worker.stop()


_SLOW_KEEPER = textwrap.dedent("""
    import sys, time, zlib
    from pyrf_blocks import Graph
    from pyrf_blocks.block import Sink
    from pyrf_blocks.interfaces import IChunkProducer
    from pyrf_blocks.net import remote_block, shm
    class slow_keeper(Sink):
        type_name = "slow_keeper"
        requires = (IChunkProducer,)
        def reset(self):
            self.kept = []
        def compute(self, chunk):
            time.sleep(0.002)
            print(chunk.seq, zlib.crc32(chunk.data), flush=True)
            if shm._owner(chunk.data).__class__ is shm._View:
                print("IN RING", chunk.seq, flush=True)
            if chunk.seq % 10 == 0:
                self.kept.append(chunk)  # holds its view into the ring
    graph = Graph()
    stand_in = remote_block(sys.argv[1], "iq", graph=graph)
    sink = slow_keeper(stand_in)
    graph.run()
    print("MAPPED", stand_in._ring is None, flush=True)
    for chunk in sink.kept:  # intact after the ring went round many times
        print("KEPT", chunk.seq, zlib.crc32(chunk.data), flush=True)
""")


@pytest.mark.chaos
def test_a_slow_consumer_keeping_chunks_over_shm_loses_and_repeats_nothing():
    """A real reader that is slow and keeps a chunk in ten (views into the ring) gets every chunk once, intact, past several ring sizes."""
    import zlib
    worker = RealWorker()
    # 1 MiB chunks, three rings' worth: the ring fills behind the kept ones.
    params = dict(SOURCE, samples_per_packet=1024, packets_per_block=128)
    count = 3 * shm.RING_SIZE // (1 << 20)
    try:
        create(worker, "src", count=count, **params)
        done = subprocess.run([sys.executable, "-c", _SLOW_KEEPER, f"{worker.url}/blocks/src"],
                              cwd=ROOT, env=environment(), capture_output=True, text=True,
                              timeout=100)
        assert done.returncode == 0, done.stderr[-3000:]
        lines = done.stdout.split("\n")
        expected = [zlib.crc32(chunk.data) for chunk in local_chunks(count, **params)]
        got = [tuple(map(int, line.split())) for line in lines
               if line and line[0].isdigit()]
        assert [seq for seq, _ in got] == list(range(count))  # none lost, none twice
        assert [crc for _, crc in got] == expected
        in_ring = [line for line in lines if line.startswith("IN RING")]
        assert 0 < len(in_ring) < count  # the ring, then the body while it was full
        kept = [tuple(map(int, line.split()[1:])) for line in lines if line.startswith("KEPT")]
        assert kept == [(seq, expected[seq]) for seq in range(0, count, 10)]
    finally:
        worker.stop()


@pytest.mark.chaos
def test_killing_the_producer_leaves_no_ring_behind():
    """SIGKILL of a worker serving over shm: the reader's graph fails, unmaps the ring, and /dev/shm is untouched."""
    worker = RealWorker()
    params = dict(SOURCE, samples_per_packet=1024, packets_per_block=16)
    # retries given to the stand-in's constructor (set after the sink
    # started it, it takes effect at the next failure too).
    script = _CONSUMER.replace('"iq", graph=graph)', '"iq", graph=graph, retries=2)')
    assert "retries=2" in script
    script = script.replace("graph.run()", textwrap.dedent("""
        import os
        try:
            graph.run()
        except Exception as error:
            print("FAILED", type(error).__name__, flush=True)
        with open(f"/proc/{os.getpid()}/maps") as maps:
            print("MAPPED", sum("memfd:pyrf-blocks-stream" in line for line in maps), flush=True)
    """))
    try:
        create(worker, "src", count=100000, **params)
        consumer = subprocess.Popen([sys.executable, "-c", script, f"{worker.url}/blocks/src"],
                                    cwd=ROOT, env=environment(), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
        try:
            for _ in range(10):
                read_line(consumer.stdout, 60)
            assert mapped_rings(consumer.pid) == 1
            os.kill(worker.process.pid, signal.SIGKILL)
            assert wait_gone(worker.process.pid)
            line = read_line(consumer.stdout, 60)
            while not line.startswith("FAILED"):
                line = read_line(consumer.stdout, 60)
            assert line == "FAILED WorkerUnreachable"
            assert read_line(consumer.stdout, 30) == "MAPPED 0"
            consumer.wait(30)
        finally:
            consumer.kill()
            consumer.communicate()
    finally:
        worker.stop()
    assert named_segments() == set()


_SEED = textwrap.dedent("""
    import sys
    import numpy as np
    from pyrf_blocks.net import client, stream
    shared, mapped = [], []
    close = stream.ServedStream.close
    def counted_close(self):
        shared.append((self.chunks_out, self.chunks_shared))
        close(self)
    stream.ServedStream.close = counted_close
    map_ring = client.remote_block._map
    def counted_map(self, description):
        map_ring(self, description)
        mapped.append(self._ring is not None)
    client.remote_block._map = counted_map
    sys.path.insert(0, "examples")
    from seed_multiprocess import build
    from pyrf_blocks import Graph, collector, set_default_graph
    graph = Graph()
    set_default_graph(graph)
    sinks = [collector(c) for c in build(True, 12, False)]
    graph.run()
    np.savez(sys.argv[1], *[sink.data() for sink in sinks],
             *[np.array([(c.start, c.end) for c in sink.chunks]) for sink in sinks])
    print("SHARED", shared, "MAPPED", mapped)
""")


def test_the_seed_split_goes_through_shared_memory_both_ways_and_equals_one_reactor(tmp_path):
    """The seed's layout over shm: IQ to the children and spectra back both in rings, arrays and times as in one reactor."""
    from test_net_processes import single_process_spectra
    out = tmp_path / "split.npz"
    done = subprocess.run([sys.executable, "-c", _SEED, str(out)], cwd=ROOT, env=environment(),
                          capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr[-3000:]
    line = done.stdout.strip().splitlines()[-1]
    # Both IQ streams served here went through their rings; both spectra
    # streams read here were mapped.
    assert line == "SHARED [(12, 12), (12, 12)] MAPPED [True, True]", line
    split = np.load(out)
    for index, sink in enumerate(single_process_spectra(12)):
        np.testing.assert_array_equal(split[f"arr_{index}"], sink.data())
        assert split[f"arr_{index + 2}"].tolist() == [[c.start, c.end] for c in sink.chunks]
