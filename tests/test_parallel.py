"""
Ordered parallel compute: blocks that run their work on a thread or
process pool emit exactly what they emit serially, in order, with
backpressure intact and the stream ended only after the last result.
"""

import functools
import os
import random
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_array_equal

from pyrf_blocks import Graph, calibrate_block, collector, fft_block
from pyrf_blocks.block import Block
from pyrf_blocks.interfaces import ISampleProducer
from pyrf_blocks.parallel import MAX_WORKERS, ProcessPool, ThreadPool
from pyrf_blocks.testing import array_source

RATE = 1.024e6


def _chunks(count=12, size=4096):
    rng = np.random.default_rng(3)
    return [rng.standard_normal(2 * size, dtype=np.float32).view(np.complex64)
            for _ in range(count)]


def _spectra(arrays, graph_pool=None, fft_pool=None, calibrate_pool=None):
    graph = Graph(parallel=graph_pool)
    source = array_source(arrays, rate=RATE, graph=graph,
                          meta={"center_frequency": 1e8, "reference_level": -5.0})
    fft = fft_block(source, size=512, overlap=128, parallel=fft_pool)
    sink = collector(calibrate_block(fft, parallel=calibrate_pool))
    graph.run()
    return sink.chunks


def _assert_same(chunks, expected):
    assert len(chunks) == len(expected)
    for got, want in zip(chunks, expected):
        assert_array_equal(got.data, want.data)
        assert (got.start, got.end, got.rate, got.seq, got.meta) == (
            want.start, want.end, want.rate, want.seq, want.meta)


def test_a_thread_pool_gives_the_serial_output():
    """FFT and calibration on a 2-thread pool, per block or per graph, emit the serial chunks exactly."""
    arrays = _chunks()
    expected = _spectra(arrays)
    with ThreadPool(2) as pool:
        _assert_same(_spectra(arrays, fft_pool=pool, calibrate_pool=pool), expected)
        _assert_same(_spectra(arrays, graph_pool=pool), expected)
        _assert_same(_spectra(arrays, graph_pool=pool, calibrate_pool=False), expected)


@pytest.mark.chaos
def test_a_process_pool_gives_the_serial_output():
    """FFT and calibration in 2 child processes, arrays through shared memory, emit the serial chunks exactly."""
    arrays = _chunks(12)
    expected = _spectra(arrays)
    with ProcessPool(2) as pool:
        _assert_same(_spectra(arrays, graph_pool=pool), expected)
        directory = pool.directory
    assert not os.path.exists(directory)


def test_a_process_pool_writes_results_in_place():
    """A result written into a shared buffer comes back as that very array, not a pickled copy."""
    with ProcessPool(1) as pool:
        out = pool.allocate((4, 8), np.float32)
        values = np.arange(32, dtype=np.float32).reshape(4, 8)
        result = pool.submit(np.multiply, values, 2.0, out).result(timeout=60)
        assert result is out
        assert_array_equal(out, values * 2)
        with pytest.raises(ValueError, match="reshape"):
            pool.submit(np.reshape, values, (5, 5)).result(timeout=60)


def test_shared_buffers_nothing_holds_are_removed():
    """A shared buffer's file goes once the array and its views are gone; the pool's folder at close."""
    pool = ProcessPool(1)
    try:
        out = pool.allocate((16,), np.float32)
        view = out[4:]
        path = pool._path(out)
        del out
        assert os.path.exists(path) and pool._path(view) is not None  # the view holds it
        del view
        assert not os.path.exists(path)
    finally:
        pool.close()
    assert not os.path.exists(pool.directory)


def _shuffled_sleep(value):
    time.sleep(random.uniform(0, 0.01))
    return value * 2


class doubler(Block):
    """Doubles samples on its compute pool, each call sleeping a random time."""

    type_name = "doubler"
    kind = "real"
    requires = (ISampleProducer,)

    def reset(self):
        self.outstanding = 0
        self.most_outstanding = 0

    def task(self, chunk):
        """The function and arguments the pool runs for ``chunk``."""
        return _shuffled_sleep, (chunk.data,)

    def compute(self, chunk):
        self.outstanding += 1
        self.most_outstanding = max(self.most_outstanding, self.outstanding)

        def emit(data):
            self.outstanding -= 1
            self.emit(data, chunk.start, chunk.end, chunk.rate, chunk.meta)

        function, args = self.task(chunk)
        self.run_parallel(function, *args, then=emit)


def test_results_finishing_out_of_order_are_emitted_in_order():
    """Work finishing in random order on 4 threads is emitted in input order, every chunk before the end."""
    arrays = [np.full(4, index, np.float32) for index in range(60)]
    with ThreadPool(4, depth=3) as pool:
        graph = Graph(parallel=pool)
        source = array_source(arrays, kind="real", graph=graph)
        block = doubler(source)
        sink = collector(block)
        graph.run()
    assert [chunk.data[0] for chunk in sink.chunks] == [2.0 * i for i in range(60)]
    assert [chunk.seq for chunk in sink.chunks] == list(range(60))
    assert sink.finished and block.most_outstanding <= 3


def test_a_failure_in_the_pool_fails_the_graph():
    """An exception raised on the pool fails the graph with it, naming the block."""

    class breaker(doubler):
        type_name = "breaker"

        def compute(self, chunk):
            self.run_parallel(np.reshape, chunk.data, (3, 3), then=lambda _: None)

    with ThreadPool(2) as pool:
        graph = Graph(parallel=pool)
        breaker(array_source([np.zeros(4, np.float32)], kind="real", graph=graph))
        collector(graph.blocks["breaker"])
        with pytest.raises(ValueError, match="reshape"):
            graph.run()
    assert graph.failed_block.name == "breaker"


def test_threads_really_run_the_work():
    """The work runs on the pool's threads, not the reactor's."""
    names = set()

    def record(value):
        names.add(threading.current_thread().name)
        return value

    class recorder(doubler):
        type_name = "recorder"

        def compute(self, chunk):
            self.run_parallel(record, chunk.data, then=lambda data: self.emit(
                data, chunk.start, chunk.end, chunk.rate, chunk.meta))

    with ThreadPool(2) as pool:
        graph = Graph(parallel=pool)
        sink = collector(recorder(array_source([np.zeros(4, np.float32)] * 8, kind="real",
                                               graph=graph)))
        graph.run()
    assert len(sink.chunks) == 8 and names and all(n.startswith("pyrf-compute") for n in names)


def test_a_hold_fused_with_its_fft_on_a_thread_pool_gives_the_serial_output():
    """max_hold(calibrate(fft)) optimised, its FFT and extreme on 2 threads, equals the unoptimised serial chain exactly."""
    from pyrf_blocks import max_hold

    arrays = _chunks()

    def held(pool, optimised):
        graph = Graph(parallel=pool)
        source = array_source(arrays, rate=RATE, graph=graph,
                              meta={"center_frequency": 1e8, "reference_level": -5.0})
        sink = collector(max_hold(calibrate_block(fft_block(source, size=511, overlap=100))))
        graph.run(optimise=optimised)
        assert len(graph.fusions) == 2 * optimised
        return sink.chunks

    expected = held(None, False)
    with ThreadPool(2) as pool:
        _assert_same(held(pool, True), expected)


def test_a_thread_pool_runs_futures_and_waits_on_close():
    """submit gives a Future with the result or the exception; close waits for the work sent, then refuses more."""
    pool = ThreadPool(2)
    done = []
    results = [pool.submit(lambda value: (time.sleep(0.01), done.append(value), value)[2], index)
               for index in range(6)]
    failing = pool.submit(int, "not a number")
    pool.close()
    assert sorted(done) == list(range(6))
    assert [future.result(timeout=0) for future in results] == list(range(6))
    with pytest.raises(ValueError, match="not a number"):
        failing.result(timeout=0)
    with pytest.raises(RuntimeError, match="closed"):
        pool.submit(int, "1")


class jittery(doubler):
    """Doubles samples on its compute pool; each call sleeps a time drawn per chunk."""

    type_name = "jittery"

    def __init__(self, producer, sleeps, **kwargs):
        self.sleeps = sleeps
        super().__init__(producer, **kwargs)

    def task(self, chunk):
        delay = self.sleeps[int(chunk.data[0]) % len(self.sleeps)]
        return _sleep_then_double, (chunk.data, delay)


def _sleep_then_double(values, delay):
    if delay:
        time.sleep(delay)
    return values * 2


@settings(max_examples=25, deadline=None)
@given(count=st.integers(0, 40), workers=st.integers(1, 3), batch=st.integers(1, 9),
       depth=st.one_of(st.none(), st.integers(1, 12)),
       sleeps=st.lists(st.sampled_from([0.0, 0.0, 0.0005, 0.002]), min_size=1, max_size=7))
def test_batched_calls_give_the_serial_chunks_whatever_the_timing(count, workers, batch, depth,
                                                                  sleeps):
    """Any batch size, depth, pool size and per-call timing: the chunks emitted are the serial ones, in order, within the depth."""
    arrays = [np.full(3, index, np.float32) for index in range(count)]

    def emitted(pool):
        graph = Graph(parallel=pool)
        block = jittery(array_source(arrays, kind="real", graph=graph), sleeps)
        sink = collector(block)
        graph.run()
        assert sink.finished
        return [(chunk.data.tolist(), chunk.start, chunk.end, chunk.seq)
                for chunk in sink.chunks], block.most_outstanding

    expected, _ = emitted(None)
    with ThreadPool(workers, depth=depth, batch=batch) as pool:
        got, most = emitted(pool)
    assert got == expected
    assert most <= pool.depth


def test_a_batched_pool_gives_the_serial_spectra():
    """The optimised spectrum chain (FFT with its fused hold, calibration) on a pool with batch 1, 3 and 8 emits the serial chunks exactly."""
    from pyrf_blocks import max_hold

    arrays = _chunks(20)

    def held(pool):
        graph = Graph(parallel=pool)
        source = array_source(arrays, rate=RATE, graph=graph,
                              meta={"center_frequency": 1e8, "reference_level": -5.0})
        sink = collector(max_hold(calibrate_block(fft_block(source, size=256, overlap=64))))
        spectra = collector(calibrate_block(fft_block(source, size=512)))
        graph.run(optimise=True)
        return sink.chunks + spectra.chunks

    expected = held(None)
    for batch in (1, 3, 8):
        with ThreadPool(2, batch=batch) as pool:
            _assert_same(held(pool), expected)


def test_a_failure_in_a_batch_fails_the_graph_after_the_results_before_it():
    """A call raising inside a group fails the graph with its error; the results sent before it are emitted first."""

    class sometimes(doubler):
        type_name = "sometimes"

        def compute(self, chunk):
            self.run_parallel(_fail_at_five, chunk.data, then=lambda data: self.emit(
                data, chunk.start, chunk.end, chunk.rate, chunk.meta))

    arrays = [np.full(2, index, np.float32) for index in range(12)]
    with ThreadPool(2, batch=4) as pool:
        graph = Graph(parallel=pool)
        sink = collector(sometimes(array_source(arrays, kind="real", graph=graph)))
        with pytest.raises(ValueError, match="five"):
            graph.run()
    assert [chunk.data[0] for chunk in sink.chunks] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert graph.failed_block.name == "sometimes"


def _fail_at_five(values):
    if values[0] == 5:
        raise ValueError("five is not welcome")
    return values


class grouped(doubler):
    """Doubles samples on its compute pool with a function that offers ``group``."""

    type_name = "grouped"

    def task(self, chunk):
        return _tripled, (chunk.data,)


_groups = []


def _tripled(values):
    if values[0] == 5:
        raise ValueError("five is not welcome")
    return values * 3


def _tripled_group(calls):
    _groups.append(len(calls))
    if any(values[0] == 5 for values, in calls):
        raise ValueError("a group with five")
    return [values * 3 for values, in calls]


_tripled.group = _tripled_group


def test_a_function_with_a_group_runs_a_batch_of_its_calls_in_one_go():
    """A function's ``group`` takes a batch of its calls at once; the chunks are the serial ones, in order."""
    arrays = [np.full(2, index + 10, np.float32) for index in range(24)]

    def emitted(pool):
        graph = Graph(parallel=pool)
        sink = collector(grouped(array_source(arrays, kind="real", graph=graph)))
        graph.run()
        return [(chunk.data.tolist(), chunk.seq) for chunk in sink.chunks]

    expected = emitted(None)
    _groups.clear()
    with ThreadPool(2, batch=4) as pool:
        assert emitted(pool) == expected
    assert sum(_groups) == 24 and max(_groups) == 4


def test_a_group_that_raises_runs_each_call_alone():
    """When a function's ``group`` raises, each call of the batch runs alone: the ones before the failing call are emitted, then the graph fails with that call's own error."""
    arrays = [np.full(2, index, np.float32) for index in range(12)]
    _groups.clear()
    with ThreadPool(2, batch=4) as pool:
        graph = Graph(parallel=pool)
        sink = collector(grouped(array_source(arrays, kind="real", graph=graph)))
        with pytest.raises(ValueError, match="five is not welcome"):
            graph.run()
    assert [chunk.data[0] for chunk in sink.chunks] == [0.0, 3.0, 6.0, 9.0, 12.0]
    assert _groups


class threaded(doubler):
    """Doubles samples on its compute pool, noting which thread ran each call."""

    type_name = "threaded"

    def task(self, chunk):
        return _double_noting_thread, (chunk.data, self.ran)

    def reset(self):
        super().reset()
        self.ran = []


def _double_noting_thread(values, ran):
    ran.append(threading.current_thread().name)
    time.sleep(0.0005)
    return values * 2


@pytest.mark.parametrize("batch", [1, 4])
def test_with_caller_runs_the_reactor_runs_tasks_and_the_output_is_the_serial_one(batch):
    """ThreadPool(2, caller_runs=True) starts one thread; the reactor's thread runs queued tasks too, the chunks are the serial ones in order, within the depth."""
    arrays = [np.full(3, index, np.float32) for index in range(120)]

    def emitted(pool):
        graph = Graph(parallel=pool)
        block = threaded(array_source(arrays, kind="real", graph=graph))
        sink = collector(block)
        graph.run()
        assert sink.finished
        return ([(chunk.data.tolist(), chunk.start, chunk.end, chunk.seq)
                 for chunk in sink.chunks], block)

    expected, _ = emitted(None)
    with ThreadPool(2, batch=batch, caller_runs=True) as pool:
        got, block = emitted(pool)
        assert len(pool._threads) == 1
    assert got == expected
    assert block.most_outstanding <= pool.depth
    ran = set(block.ran)
    assert "pyrf-compute_0" in ran and len(ran) == 2  # the pool's thread and the reactor's


def test_run_queued_leaves_a_task_for_each_thread():
    """run_queued runs a queued task in the caller's thread only while more are queued than the pool has threads."""
    pool = ThreadPool(3, caller_runs=True)
    assert pool.threads == 2
    done = []
    pool._tasks.extend((done.append, (index,), lambda ok, value: None) for index in range(3))
    assert pool.run_queued() is True
    assert done == [0]
    assert pool.run_queued() is False and len(pool._tasks) == 2
    assert ThreadPool(1, caller_runs=True).threads == 1
    assert ThreadPool(2).threads == 2


def test_batch_must_be_a_positive_integer():
    """ThreadPool(batch=0) and batch=1.5 are refused with the value named."""
    for bad in (0, 1.5, -2):
        with pytest.raises(ValueError, match=f"batch must be a positive integer, got {bad!r}"):
            ThreadPool(2, batch=bad)


def test_workers_are_bounded_so_a_mistyped_count_is_refused_at_once(tmp_path):
    """ThreadPool and ProcessPool refuse more than MAX_WORKERS workers (and 0, 1.5, True) naming the value, before making anything."""
    # The process pool's segment folder would go in tmp_path: nothing else
    # writes there (/dev/shm is shared with other tests running at once).
    for pool in (ThreadPool, functools.partial(ProcessPool, directory=str(tmp_path))):
        name = getattr(pool, "func", pool).__name__
        with pytest.raises(ValueError, match=f"{name}: workers must be at most "
                                             f"{MAX_WORKERS}, got {MAX_WORKERS + 1}"):
            pool(MAX_WORKERS + 1)
        for bad in (0, 1.5, True):
            with pytest.raises(ValueError, match=f"workers must be a positive integer, "
                                                 f"got {bad!r}"):
                pool(bad)
    assert list(tmp_path.iterdir()) == []  # (no segment folder made)
    assert ThreadPool(MAX_WORKERS).workers == MAX_WORKERS


def test_a_thread_the_system_refuses_closes_the_pool_with_a_clear_error(monkeypatch):
    """When starting the pool's third thread fails, send raises one clear error, the two started end, and nothing is left queued."""
    real_start, started = threading.Thread.start, []

    def start(thread):
        if thread.name.startswith("pyrf-compute_") and len(started) == 2:
            raise RuntimeError("can't start new thread")
        real_start(thread)
        started.append(thread)

    monkeypatch.setattr(threading.Thread, "start", start)
    pool = ThreadPool(4)
    with pytest.raises(RuntimeError, match=r"the system refused thread 3 of 4 \(can't start "
                                           r"new thread\); give the pool fewer workers"):
        pool.send(len, ((),), lambda ok, value: None)
    for thread in started:
        thread.join(10)
        assert not thread.is_alive()
    assert not pool._tasks
    with pytest.raises(RuntimeError, match="is closed"):
        pool.send(len, ((),), lambda ok, value: None)
    pool.close()


def test_a_process_pool_given_to_one_block_gives_the_serial_output():
    """fft_block(parallel=ProcessPool(2)) alone, and calibrate_block on its own process pool, emit the serial chunks exactly."""
    arrays = _chunks(10)
    expected = _spectra(arrays)
    with ProcessPool(2) as fft_pool, ProcessPool(1) as calibrate_pool:
        _assert_same(_spectra(arrays, fft_pool=fft_pool), expected)
        _assert_same(_spectra(arrays, fft_pool=fft_pool, calibrate_pool=calibrate_pool),
                     expected)


def test_a_pool_cannot_go_with_a_block_to_another_process():
    """A block placed in another process (proc=) with parallel=<a pool> is refused with the block and the value named."""
    from pyrf_blocks.net.placement import process

    place = process()  # nothing is started until a block placed there is consumed
    graph = Graph()
    source = array_source(_chunks(1), rate=RATE, graph=graph)
    with ThreadPool(1) as pool:
        with pytest.raises(TypeError, match=r"fft_block: parameter parallel=<ThreadPool of 1> "
                                            r"cannot be sent to another process"):
            fft_block(source, proc=place, parallel=pool)


def test_a_block_on_a_deep_pool_reuses_its_output_buffers():
    """With 64 results outstanding the FFT's output buffers are reused: it makes a bounded number, not one per chunk."""
    from pyrf_blocks import max_hold

    arrays = _chunks(8)
    with ThreadPool(2, batch=8) as pool:
        graph = Graph(parallel=pool)
        source = array_source(arrays, rate=RATE, repeat=40, graph=graph,
                              meta={"center_frequency": 1e8, "reference_level": -5.0})
        fft = fft_block(source, size=512)
        sink = collector(max_hold(calibrate_block(fft)))
        graph.run(optimise=True)
    assert len(sink.chunks) == 320
    assert fft._buffers.made <= 2 * pool.depth < 320


def _array_identity(values):
    return id(values), float(values.sum())


def test_a_process_pool_sends_a_read_only_array_once_and_a_writeable_one_each_time():
    """A small read-only array (a window) is the same array in the worker call after call; a writeable one is sent afresh, changes and all."""
    window = np.arange(16, dtype=np.float32)
    window.flags.writeable = False
    table = np.zeros(16, np.float32)
    with ProcessPool(1, batch=1) as pool:
        seen = [pool.submit(_array_identity, window).result(timeout=60) for _ in range(4)]
        assert len({identity for identity, _ in seen}) == 1
        assert {total for _, total in seen} == {120.0}
        sums = []
        for value in range(3):
            table[:] = value
            sums.append(pool.submit(_array_identity, table).result(timeout=60)[1])
        assert sums == [0.0, 16.0, 32.0]


def test_a_process_pool_worker_unmaps_a_segment_once_it_is_gone():
    """A shared buffer dropped in the parent is unmapped by the worker that used it at its next call, not kept."""
    with ProcessPool(1, batch=1) as pool:
        out = pool.allocate((1024,), np.float32)
        pool.submit(np.multiply, np.ones(1024, np.float32), 2.0, out).result(timeout=60)
        path = pool._path(out)
        pid = pool.pids[0]
        with open(f"/proc/{pid}/maps") as maps:
            assert path in maps.read()
        del out
        assert not os.path.exists(path)
        pool.submit(int, "3").result(timeout=60)  # the next call carries the news
        with open(f"/proc/{pid}/maps") as maps:
            assert path not in maps.read()


def _unpicklable(_):
    return threading.Lock()


def test_a_process_pool_result_that_cannot_come_back_is_a_clear_error():
    """A result pickle refuses fails its call with an error saying so; the pool goes on."""
    with ProcessPool(1) as pool:
        with pytest.raises(RuntimeError, match="could not be sent back from the worker process"):
            pool.submit(_unpicklable, 1).result(timeout=60)
        assert pool.submit(int, "7").result(timeout=60) == 7


def test_a_failure_in_a_process_batch_fails_the_graph_after_the_results_before_it():
    """On a process pool with batch 4, a call raising fails the graph with its error; the results sent before it are emitted first."""

    class sometimes_in_processes(doubler):
        type_name = "sometimes_in_processes"

        def compute(self, chunk):
            self.run_parallel(_fail_at_five, chunk.data, then=lambda data: self.emit(
                data, chunk.start, chunk.end, chunk.rate, chunk.meta))

    arrays = [np.full(2, index, np.float32) for index in range(12)]
    with ProcessPool(2, batch=4) as pool:
        graph = Graph(parallel=pool)
        sink = collector(sometimes_in_processes(array_source(arrays, kind="real", graph=graph)))
        with pytest.raises(ValueError, match="five"):
            graph.run()
    assert [chunk.data[0] for chunk in sink.chunks] == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert graph.failed_block.name == "sometimes_in_processes"


@pytest.mark.chaos
def test_a_worker_process_killed_fails_the_block_clearly_and_loses_nothing_silently():
    """SIGKILL to a worker mid-stream: the graph fails with BrokenProcessPool naming the process and SIGKILL, what was emitted is the serial prefix, later calls are refused, close returns."""
    import signal
    from concurrent.futures.process import BrokenProcessPool

    arrays = [np.full(4, index, np.float32) for index in range(60)]
    expected = [2.0 * index for index in range(60)]
    pool = ProcessPool(2, batch=2)
    killed = []

    def kill_one():
        deadline = time.monotonic() + 60
        while len(sink.chunks) < 4 and time.monotonic() < deadline:
            time.sleep(0.005)  # mid-stream: 60 calls of 20 ms on 2 processes take 0.6 s
        killed.append(pool.pids[0])
        os.kill(pool.pids[0], signal.SIGKILL)

    killer = threading.Thread(target=kill_one)
    try:
        graph = Graph(parallel=pool)
        block = jittery(array_source(arrays, kind="real", graph=graph), [0.02])
        sink = collector(block)
        killer.start()
        started = time.monotonic()
        with pytest.raises(BrokenProcessPool, match=r"killed by signal 9 \(SIGKILL\) with "
                                                    r"\d+ call\(s\) unfinished") as failed:
            graph.run()
        assert f"worker process {killed[0]} killed" in str(failed.value)
        assert time.monotonic() - started < 30
        assert graph.failed_block.name == block.name
        got = [chunk.data[0] for chunk in sink.chunks]
        assert 0 < len(got) < 60 and got == expected[:len(got)]
        with pytest.raises(BrokenProcessPool, match="SIGKILL"):
            pool.submit(int, "1").result(timeout=60)
    finally:
        killer.join()
        pool.close()
    assert not os.path.exists(pool.directory)


def test_a_read_only_array_refilled_in_place_reaches_the_worker_afresh():
    """A small read-only array made writeable, refilled and read-only again (as a block's buffer pool does) is not taken for the constant it was."""
    buffer = np.zeros(16, np.float32)
    sums = []
    with ProcessPool(1, batch=1) as pool:
        for value in range(3):
            buffer.flags.writeable = True
            buffer[:] = value
            buffer.flags.writeable = False
            sums.append(pool.submit(_array_identity, buffer).result(timeout=60)[1])
    assert sums == [0.0, 16.0, 32.0]


def test_a_process_pool_keeps_a_bounded_number_of_input_copies():
    """Inputs of ever new shapes are copied into shared memory, but the copies kept for reuse stay within twice the depth."""
    with ProcessPool(1, depth=4, batch=1) as pool:
        for size in range(1, 40):
            values = np.ones(size * 1024, np.float32)  # writeable: copied in
            assert pool.submit(_array_identity, values).result(timeout=60)[1] == size * 1024
        assert pool._free_count <= 2 * pool.depth
        assert sum(len(copies) for copies in pool._free.values()) == pool._free_count
