"""
Ordered parallel compute: a block hands the heavy, stateless part of its
work to a pool of threads or processes, and its results are emitted in
the order the work was sent (strax's mailbox of futures).

A block calls :meth:`Block.run_parallel
<pyrf_blocks.block.Block.run_parallel>` with a function, its arguments and
what to do with the result; the bookkeeping that must stay in order (a
stream's tail, timestamps, ``seq``) stays in the reactor thread, in
``compute``.  Without a pool the function runs at once, so a block written
this way costs nothing when it runs serially.  The pool is chosen per
block (``fft_block(src, parallel=pool)``) or per graph
(``Graph(parallel=pool)``: every block that can use one does); output is
the same chunk for chunk whatever the pool.

- :class:`ThreadPool`: numpy's ufuncs on large arrays, scipy's FFT and FFTW
  release the GIL, so threads use several cores with no copying.
- :class:`ProcessPool`: separate processes; arrays travel through shared
  memory (files in ``/dev/shm``, mapped on both sides), never pickled.  A
  block's output buffers (:meth:`Block.buffer
  <pyrf_blocks.block.Block.buffer>`) are then made in shared memory, so a
  result is written in place by the child; inputs are copied in once.

A function may offer ``function.group``: given the argument tuples of
several of its calls, it returns their results, in order, the same as the
calls one by one.  A :class:`ThreadPool` with ``batch`` > 1 hands a group
of a block's calls to it in one go (one compiled call for them all, say,
that releases the GIL once where the calls would each release it and take
it back); should it raise, each call runs alone, so every call keeps its
own outcome.

Backpressure stays intact: a block with ``depth`` results outstanding
pauses its inputs until the oldest is emitted, and a block's stream ends
only after every outstanding result.
"""

import atexit
import mmap
import os
import shutil
import tempfile
import threading
import weakref
from collections import OrderedDict, deque
from concurrent import futures

import numpy as np
from twisted.python.failure import Failure

__all__ = ["ThreadPool", "ProcessPool", "Mailbox"]

_PENDING = object()


class ThreadPool:
    """
    ``workers`` threads for blocks' compute.

    :param workers: threads.
    :param depth: results a block may have outstanding before its inputs
        pause (four times ``workers × batch`` by default: with twice, on
        the 2-core machine, the threads slept and were woken once per chunk
        and the pool cost 15–25 % more CPU per chunk than the serial chain;
        with four times, none more).
    :param batch: most calls of one block a thread runs as one task: the
        calls a block makes in one turn of the reactor (a source's burst of
        chunks) go to the pool in groups of ``batch``, and their results
        come back together, so the hand-off (a queue, a thread's wake-up,
        a wake-up of the reactor) is paid once per group.  Results are
        still delivered one by one, in order; the output does not depend on
        it.  1 (the default) sends every call as it is made.
    :param caller_runs: the thread that sends the work (the reactor's) is
        one of the ``workers``: the pool starts one thread fewer (at least
        one), and while a block's inputs are paused on its outstanding
        results the reactor's thread runs queued tasks itself, leaving one
        queued for each of the pool's threads.  ``workers`` threads then
        share ``workers`` cores, not one more: on the 2-core machine the
        spectrum chain went from 1.5× to 1.8× its serial throughput
        (``benchmarks/parallel.py``), where 2 threads and the reactor's
        took turns on the cores and cost 12 % more CPU per chunk than the
        serial chain.  Order, depth and output are the same; the reactor
        runs one task (a group of ``batch`` calls) at a time, as a serial
        graph runs each call.
    """

    kind = "thread"
    caller_runs = False

    def __init__(self, workers=2, depth=None, batch=1, caller_runs=False):
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"ThreadPool: workers must be a positive integer, got {workers!r}")
        if not isinstance(batch, int) or batch < 1:
            raise ValueError(f"ThreadPool: batch must be a positive integer, got {batch!r}")
        self.workers = workers
        self.batch = batch
        self.depth = depth or 4 * workers * batch
        self.caller_runs = bool(caller_runs)
        #: The threads the pool starts.
        self.threads = max(1, workers - 1) if caller_runs else workers
        # The threads take tasks from one queue and hand each result to the
        # task's own callback: no Future, work item or semaphore per task
        # (concurrent.futures' executor cost several microseconds of
        # GIL-held Python per task on both sides); a thread sleeps only
        # when the queue is empty, and is woken only then.
        self._tasks = deque()
        self._wake = threading.Condition(threading.Lock())
        self._sleeping = 0
        self._closing = False
        self._threads = []

    def __repr__(self):
        batch = f", batch {self.batch}" if self.batch > 1 else ""
        caller = ", the caller's thread one of them" if self.caller_runs else ""
        return f"<{type(self).__name__} of {self.workers}{batch}{caller}>"

    def send(self, function, args, deliver):
        """
        Start ``function(*args)``; ``deliver(True, result)`` or
        ``deliver(False, exception)`` is called in the thread that ran it.
        """
        with self._wake:
            if self._closing:
                raise RuntimeError(f"{self!r} is closed")
            self._tasks.append((function, args, deliver))
            if self._sleeping:
                self._wake.notify()
            if not self._threads:
                for index in range(self.threads):
                    thread = threading.Thread(target=self._work, daemon=True,
                                              name=f"pyrf-compute_{index}")
                    thread.start()
                    self._threads.append(thread)

    def _work(self):
        tasks, wake = self._tasks, self._wake
        while True:
            with wake:
                while not tasks:
                    if self._closing:
                        return
                    self._sleeping += 1
                    wake.wait()
                    self._sleeping -= 1
                function, args, deliver = tasks.popleft()
            _run(function, args, deliver)

    def run_queued(self):
        """
        Run the oldest task no thread has taken yet here, in the caller's
        thread, when more are queued than the pool has threads (each of
        them is left one); False when not.
        """
        with self._wake:
            if len(self._tasks) <= self.threads:
                return False
            function, args, deliver = self._tasks.popleft()
        _run(function, args, deliver)
        return True

    def submit(self, function, *args):
        """
        Start ``function(*args)``; return its ``concurrent.futures.Future``.
        """
        future = futures.Future()
        future.set_running_or_notify_cancel()

        def deliver(ok, value):
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

        self.send(function, args, deliver)
        return future

    def allocate(self, shape, dtype):
        """
        A new array for a block's output (:class:`~pyrf_blocks.buffers.BufferPool`).
        """
        return np.empty(shape, dtype)

    def close(self):
        """
        Wait for the work sent, then stop the threads.
        """
        with self._wake:
            self._closing = True
            self._wake.notify_all()
        for thread in self._threads:
            thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()


def _run(function, args, deliver):
    try:
        result = function(*args)
    except BaseException as error:  # noqa: B902 (handed to the caller)
        deliver(False, error)
    else:
        deliver(True, result)


# Shared memory for ProcessPool: a segment is a file in a directory of the
# pool's (in /dev/shm where it exists), mapped by the parent when made and
# by a child when first used; a child keeps its mappings.


class _Segment:
    __slots__ = ("path", "size")

    def __init__(self, path, size):
        self.path, self.size = path, size

    def map(self):
        with open(self.path, "w+b") as stream:
            stream.truncate(self.size)
            return mmap.mmap(stream.fileno(), self.size)


_child_maps = OrderedDict()
#: Mappings a child keeps (the parent reuses a block's few buffers, so a
#: handful are in use at a time; older ones belong to forgotten buffers).
_CHILD_MAPS = 256


def _mapped(path, size):
    found = _child_maps.get(path)
    if found is None:
        with open(path, "r+b") as stream:
            found = _child_maps[path] = mmap.mmap(stream.fileno(), size)
        if len(_child_maps) > _CHILD_MAPS:
            _, oldest = _child_maps.popitem(last=False)
            try:
                oldest.close()
            except BufferError:  # still viewed: unmapped when the view goes
                pass
    else:
        _child_maps.move_to_end(path)
    return found


def _array_of(spec):
    path, size, offset, shape, strides, dtype = spec
    buffer = _mapped(path, size)
    base = np.frombuffer(buffer, np.uint8, size)
    return np.lib.stride_tricks.as_strided(base[offset:].view(dtype), shape, strides)


def _call_shared(function, args):
    # In the child: arrays come back from their shared segments; a result
    # that is one of them goes back as its index, never pickled.
    arrays = [_array_of(value) if kind == "shared" else value for kind, value in args]
    result = function(*arrays)
    if isinstance(result, np.ndarray):
        for index, (kind, _) in enumerate(args):
            if kind == "shared" and result is arrays[index]:
                return ("argument", index)
    return ("value", result)


class ProcessPool(ThreadPool):
    """
    ``workers`` processes for blocks' compute, arrays through shared
    memory.  Functions sent must be importable (module-level), as with
    any process pool.

    :param workers: processes.
    :param depth: results a block may have outstanding before its inputs
        pause (four times ``workers`` by default).
    :param directory: where the shared segments live (a new folder in
        ``/dev/shm`` by default, removed by :meth:`close` and at exit).
    """

    kind = "process"

    def __init__(self, workers=2, depth=None, directory=None):
        if not isinstance(workers, int) or workers < 1:
            raise ValueError(f"ProcessPool: workers must be a positive integer, got {workers!r}")
        self.workers = workers
        self.batch = 1  # a task's arrays travel one call at a time
        self.depth = depth or 4 * workers
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.directory = tempfile.mkdtemp(prefix="pyrf-blocks-", dir=directory or shm)
        self._segments = {}  # address of the mapping -> _Segment
        self._lock = threading.Lock()
        self._count = 0
        self._inputs = None
        import multiprocessing
        context = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
        self._executor = futures.ProcessPoolExecutor(workers, mp_context=context)
        atexit.register(self._remove)

    def allocate(self, shape, dtype):
        """
        A new array in shared memory, for a block's output: a child writes
        a result into it in place.
        """
        dtype = np.dtype(dtype)
        size = max(1, int(np.prod(shape)) * dtype.itemsize)
        with self._lock:
            self._count += 1
            path = os.path.join(self.directory, f"segment-{self._count}")
        segment = _Segment(path, size)
        mapping = segment.map()
        array = np.frombuffer(mapping, dtype, int(np.prod(shape))).reshape(shape)
        address = array.ctypes.data
        with self._lock:
            self._segments[address] = segment
        # Once the mapping is gone — the array, every view of it, and so
        # every task given one — the segment is forgotten and its file
        # removed: nothing can need it any more.
        weakref.finalize(mapping, self._forget, address)
        return array

    def _forget(self, address):
        with self._lock:
            segment = self._segments.pop(address, None)
        if segment is not None:
            try:
                os.unlink(segment.path)
            except OSError:
                pass

    def _spec(self, array):
        address = array.__array_interface__["data"][0]
        segment = self._segments.get(address)
        if segment is not None and array.nbytes <= segment.size:
            return ("shared", (segment.path, segment.size, 0, array.shape,
                               array.strides, array.dtype.str))
        with self._lock:
            segments = tuple(self._segments.items())
        for start, segment in segments:
            if start <= address < start + segment.size:
                return ("shared", (segment.path, segment.size, address - start,
                                   array.shape, array.strides, array.dtype.str))
        return None

    def submit(self, function, *args):
        """
        Start ``function(*args)`` in a child; arrays among ``args`` go
        through shared memory (copied in once unless made by
        :meth:`allocate`).  Return a ``concurrent.futures.Future``.
        """
        from .buffers import BufferPool

        if self._inputs is None:
            self._inputs = BufferPool(limit=4 * self.depth, allocate=self.allocate)
        sent, held = [], []
        for value in args:
            if isinstance(value, np.ndarray) and value.size:
                spec = self._spec(value)
                if spec is None:
                    copy = self._inputs.take(value.shape, value.dtype)
                    np.copyto(copy, value)
                    held.append(copy)  # not reused until the child is done
                    spec = self._spec(copy)
                sent.append(spec)
            else:
                sent.append(("value", value))
        inner = self._executor.submit(_call_shared, function, sent)
        outer = futures.Future()

        def done(future):
            held.clear()
            try:
                kind, value = future.result()
            except BaseException as error:  # noqa: B902 (handed to the caller)
                outer.set_exception(error)
                return
            outer.set_result(args[value] if kind == "argument" else value)

        inner.add_done_callback(done)
        return outer

    def send(self, function, args, deliver):
        """
        Start ``function(*args)`` in a child (as :meth:`submit`);
        ``deliver(True, result)`` or ``deliver(False, exception)`` is called
        once it is done.
        """
        self.submit(function, *args).add_done_callback(lambda done: deliver(*_outcome(done)))

    def _remove(self):
        shutil.rmtree(self.directory, ignore_errors=True)

    def close(self):
        """
        Wait for the work sent, stop the processes and remove the shared
        segments.
        """
        self._executor.shutdown(wait=True)
        self._remove()
        atexit.unregister(self._remove)


def _outcome(future):
    error = future.exception()
    return (True, future.result()) if error is None else (False, error)


class Mailbox:
    """
    A block's outstanding results, delivered in the order they were sent.

    :param reactor: where results are delivered (its thread).
    :param failed: called with a ``Failure`` when a function raised.
    :param delivered: called after results were delivered.
    """

    def __init__(self, reactor, failed, delivered=lambda: None):
        self._reactor = reactor
        self._failed = failed
        self._delivered = delivered
        self._pending = deque()
        self._idle = []
        self.closed = False
        # Results that arrived (from the pool's threads) and are not yet
        # seen by the reactor: one wake-up of the reactor takes all of them.
        self._arrivals = []
        self._arrivals_lock = threading.Lock()
        # Calls held for the pool's next group (ThreadPool(batch=)): sent
        # once there are ``batch`` of them, when the block's depth is
        # reached, or at the end of this turn of the reactor.
        self._batch = []
        self._batch_pool = None
        self._batch_call = None
        # (pool, callFromThread, pool.send, pool.batch, pool.caller_runs)
        self._pool = None
        self._help_call = None

    def __len__(self):
        return len(self._pending)

    def send(self, pool, function, args, then):
        """
        Run ``function(*args)`` on ``pool`` and call ``then(result)`` once
        it is done and every earlier result was delivered.  ``pool`` has
        ``send(function, args, deliver)`` (:class:`ThreadPool`,
        :class:`ProcessPool`) or only ``submit(function, *args)``, which
        returns a ``concurrent.futures.Future``.
        """
        entry = [then, _PENDING]
        self._pending.append(entry)
        found = self._pool
        if found is None or found[0] is not pool:
            # (what the pool offers, looked up once per pool, not per call)
            found = self._pool = (pool, getattr(self._reactor, "callFromThread", None),
                                  getattr(pool, "send", None), getattr(pool, "batch", 1),
                                  getattr(pool, "caller_runs", False))
        _, call, send, batch, caller_runs = found
        if call is None:
            # A task.Clock (tests): no other thread delivers; wait here.
            future = pool.submit(function, *args)
            futures.wait([future])
            entry[1] = _outcome(future)
            self._deliver()
            return
        if batch > 1 and send is not None:
            if self._batch_pool is not pool:
                self.flush()
                self._batch_pool = pool
            held = self._batch
            held.append((function, args, entry))
            if len(held) >= batch or len(self._pending) >= pool.depth:
                self.flush()
            elif self._batch_call is None:
                self._batch_call = self._reactor.callLater(0, self.flush)
        elif send is not None:
            send(function, args, lambda ok, value: self._arrived(call, ((entry, (ok, value)),)))
        else:
            pool.submit(function, *args).add_done_callback(
                lambda done: self._arrived(call, ((entry, _outcome(done)),)))
        if caller_runs and len(self._pending) >= pool.depth:
            self._help_soon()

    def flush(self):
        """
        Send the calls held for the pool's next group now.
        """
        if self._batch_call is not None:
            if self._batch_call.active():
                self._batch_call.cancel()
            self._batch_call = None
        calls, self._batch = self._batch, []
        if not calls or self.closed:
            return
        entries = [entry for _, _, entry in calls]
        call = self._reactor.callFromThread

        def deliver(ok, outcomes):
            if not ok:  # (_run_group catches what the calls raise)
                outcomes = [(False, outcomes)] * len(entries)
            self._arrived(call, zip(entries, outcomes))

        try:
            self._batch_pool.send(_run_group, ([(function, args) for function, args, _ in calls],),
                                  deliver)
        except Exception:  # a closed pool: the block fails, as a call sent at once would
            self.closed = True
            self._failed(Failure())

    def _arrived(self, call, outcomes):
        # In the thread that finished the work.  Only the first result of a
        # burst wakes the reactor (a write to its waker pipe and a turn of
        # its loop); the ones that arrive before it has run ride along.
        with self._arrivals_lock:
            first = not self._arrivals
            self._arrivals.extend(outcomes)
            if not first:
                return
        call(self._take_arrivals)

    def _take_arrivals(self):
        with self._arrivals_lock:
            arrivals, self._arrivals = self._arrivals, []
        for entry, outcome in arrivals:
            entry[1] = outcome
        self._deliver()

    def _deliver(self):
        pending = self._pending
        while pending and pending[0][1] is not _PENDING:
            then, (ok, value) = pending.popleft()
            if self.closed:
                continue
            try:
                if not ok:
                    raise value
                then(value)
            except Exception:
                self.closed = True
                self._failed(Failure())
        if self.closed:
            return
        self._delivered()
        pool = self._pool
        if pool is not None and pool[4] and len(pending) > pool[0].depth // 2:
            # (the block's inputs stay paused: Block.run_parallel's rule)
            self._help_soon()
        if not pending:
            idle, self._idle = self._idle, []
            for callback in idle:
                callback()

    def _help_soon(self):
        if self._help_call is None:
            self._help_call = self._reactor.callLater(0, self._help)

    def _help(self):
        # The reactor's thread, with the block's inputs paused on its
        # outstanding results, runs a queued task itself (ThreadPool's
        # caller_runs); its outcome arrives as the threads' do, and its
        # delivery asks for the next.
        self._help_call = None
        if not self.closed:
            self.flush()
            self._pool[0].run_queued()

    def when_idle(self, callback):
        """
        Call ``callback()`` once nothing is outstanding (now if nothing is).
        """
        if not self._pending:
            callback()
        else:
            self.flush()
            self._idle.append(callback)

    def close(self):
        """
        Deliver nothing more (the block was reset or stopped).
        """
        self.closed = True
        self._idle = []
        if self._batch_call is not None and self._batch_call.active():
            self._batch_call.cancel()
        self._batch_call = None
        self._batch = []
        if self._help_call is not None and self._help_call.active():
            self._help_call.cancel()
        self._help_call = None


def _run_group(calls):
    # In a pool's thread: a group of one block's calls, in order, each
    # outcome kept apart (one call raising does not stop the others).  Calls
    # of one function that has a ``group`` (see the module's notes) go to it
    # in one go; should it raise, each call runs alone.
    function = calls[0][0]
    group = getattr(function, "group", None)
    if group is not None and len(calls) > 1 and all(
            called is function for called, _ in calls):
        try:
            return [(True, result) for result in group([args for _, args in calls])]
        except Exception:  # noqa: B902 (each call alone tells its own outcome)
            pass
    outcomes = []
    for function, args in calls:
        try:
            outcomes.append((True, function(*args)))
        except BaseException as error:  # noqa: B902 (handed to the caller)
            outcomes.append((False, error))
    return outcomes
