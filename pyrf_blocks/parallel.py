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
  result is written in place by a worker process; an input already there
  travels as a few numbers, any other is copied in for the call.

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
import bisect
import mmap
import os
import pickle
import selectors
import shutil
import signal
import tempfile
import threading
import weakref
from collections import OrderedDict, deque
from concurrent import futures
from concurrent.futures.process import BrokenProcessPool

import numpy as np
from twisted.python.failure import Failure

__all__ = ["ThreadPool", "ProcessPool", "Mailbox", "MAX_WORKERS"]

_PENDING = object()

#: Most threads or processes a pool may have: more than the cores of any
#: machine it is meant for (compute beyond the cores only takes turns),
#: few enough that a mistyped count is refused at once rather than starting
#: threads until the system has no more to give (100 000 threads took half
#: a minute to fail, measured).
MAX_WORKERS = 1024


def _check_sizes(pool, workers, batch):
    # The counts every pool takes, checked alike.
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 1:
        raise ValueError(f"{pool}: workers must be a positive integer, got {workers!r}")
    if workers > MAX_WORKERS:
        raise ValueError(f"{pool}: workers must be at most {MAX_WORKERS}, got {workers!r}")
    if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
        raise ValueError(f"{pool}: batch must be a positive integer, got {batch!r}")


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
        _check_sizes("ThreadPool", workers, batch)
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
            if not self._threads:
                self._start_threads()
            self._tasks.append((function, args, deliver))
            if self._sleeping:
                self._wake.notify()

    def _start_threads(self):
        # (with self._wake held) The pool's threads, all or none: where the
        # system refuses one, those started end and the pool is closed.
        for index in range(self.threads):
            thread = threading.Thread(target=self._work, daemon=True,
                                      name=f"pyrf-compute_{index}")
            try:
                thread.start()
            except RuntimeError as error:  # ("can't start new thread")
                self._closing = True
                self._wake.notify_all()
                raise RuntimeError(f"{self!r}: the system refused thread {index + 1} of "
                                   f"{self.threads} ({error}); give the pool fewer "
                                   "workers") from None
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


# ProcessPool.  Shared memory: a segment is a file in a directory of the
# pool's (in /dev/shm where it exists), mapped by the parent when made and
# by a worker when first used; a worker keeps its mappings (and the arrays
# it made of them) until the parent says the segment is gone.  The
# workers are a fixed set of processes, each fed groups of calls through
# a pipe of its own and answering through another; one thread of the
# parent reads the answers and notices a worker that died.


class _Worker:
    """The parent's side of one worker process."""

    __slots__ = ("process", "requests", "results", "pending", "shipped", "forgotten")

    def __init__(self, process, requests, results):
        self.process, self.requests, self.results = process, requests, results
        #: (deliver, calls, single, held) of each group sent and not answered,
        #: oldest first (a worker answers in the order it was asked).
        self.pending = deque()
        #: Tokens of the constants this worker has been sent.
        self.shipped = set()
        #: Segments and constants gone since the last request.
        self.forgotten = []


def _serve(directory, requests, results):
    # A worker's loop: a request is (forgotten, constants, calls), answered
    # in order (_answer); an empty one, or the parent's end, stops it.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent stops us
    segments = {}  # number -> (mapping, {view spec: array})
    constants = {}  # token -> read-only array
    while True:
        try:
            message = requests.recv_bytes()
        except (EOFError, OSError):
            return
        if not message:
            return
        results.send_bytes(_answer(directory, segments, constants, message))


def _answer(directory, segments, constants, message):
    # In a worker: one request's answer, one outcome per call: (0, index)
    # for a result written into the shared argument ``index``, (1, value)
    # for a value, (2, error).
    forgotten, shipped, calls = pickle.loads(message)
    for number in forgotten:
        segments.pop(number, None)
        constants.pop(number, None)
    for token, value in shipped:
        value.flags.writeable = False
        constants.setdefault(token, value)  # the same array each time
    outcomes = []
    for function, values, shared, constant in calls:
        try:
            for index in shared:
                values[index] = _view(segments, directory, values[index])
            for index in constant:
                values[index] = constants[values[index]]
            result = function(*values)
            outcome = None
            if shared and isinstance(result, np.ndarray):
                for index in shared:
                    if result is values[index]:
                        outcome = (0, index)
                        break
            outcomes.append(outcome or (1, result))
        except BaseException as error:  # noqa: B902 (handed to the parent)
            outcomes.append((2, error))
    try:
        return pickle.dumps(outcomes, -1)
    except Exception:  # noqa: BLE001 (a value or an error pickle refuses)
        return pickle.dumps([_picklable(outcome) for outcome in outcomes], -1)


def _view(segments, directory, spec):
    # In a worker: the array ``spec`` describes, in its shared segment.
    number, size, offset, shape, strides, dtype = spec
    found = segments.get(number)
    if found is None:
        if len(segments) >= _WORKER_SEGMENTS:  # (the parent's notices lost? bound it)
            segments.pop(next(iter(segments)))
        with open(os.path.join(directory, f"segment-{number}"), "r+b") as stream:
            found = segments[number] = (mmap.mmap(stream.fileno(), size), {})
    mapping, views = found
    array = views.get(spec)
    if array is None:
        if len(views) >= 64:
            views.clear()
        array = views[spec] = np.ndarray(shape, dtype, mapping, offset, strides)
    return array


#: Most segments a worker keeps mapped (the parent tells it which are gone;
#: this bounds what it keeps should it not).
_WORKER_SEGMENTS = 1024


def _picklable(outcome):
    try:
        pickle.dumps(outcome, -1)
        return outcome
    except Exception as error:  # noqa: BLE001
        kind, value = outcome
        what = f"{type(value).__name__}: {value}" if kind == 2 else f"a {type(value).__name__}"
        return (2, RuntimeError(f"ProcessPool: {what} could not be sent back "
                                f"from the worker process ({error})"))


#: Read-only arrays up to this size not in shared memory (a window, a
#: table) are constants: sent to each worker once, kept there while they
#: live.  Larger ones are copied into shared memory for each call.
CONSTANT_BYTES = 1 << 16


class ProcessPool(ThreadPool):
    """
    ``workers`` processes for blocks' compute, arrays through shared
    memory.  Functions sent must be importable (module-level), as with
    any process pool.

    A block's output buffers are made in shared memory, so a result is
    written in place; an input array already in shared memory (another
    block's output) travels as a few numbers; any other input is copied
    into shared memory for the call, except a small read-only array (up
    to :data:`CONSTANT_BYTES`: a window, a table), which is sent to each
    process once and kept there while it lives — don't make such an array
    writeable again and change it.  Other arguments are pickled.

    A worker process that dies fails the calls it had, and every later
    one, with ``concurrent.futures.process.BrokenProcessPool`` naming the
    process and how it ended: a block using the pool fails with it.

    :param workers: processes.
    :param depth: results a block may have outstanding before its inputs
        pause (four times ``workers × batch`` by default).
    :param batch: most calls of one block sent to a process as one
        request (as :class:`ThreadPool`'s ``batch``); 8 by default, as a
        request and its answer cost tens of microseconds.
    :param directory: where the shared segments live (a new folder in
        ``/dev/shm`` by default, removed by :meth:`close` and at exit).
    """

    kind = "process"

    def __init__(self, workers=2, depth=None, batch=8, directory=None):
        _check_sizes("ProcessPool", workers, batch)
        self.workers = workers
        self.batch = batch
        self.depth = depth or 4 * workers * batch
        shm = "/dev/shm" if os.path.isdir("/dev/shm") else None
        self.directory = tempfile.mkdtemp(prefix="pyrf-blocks-", dir=directory or shm)
        self._lock = threading.Lock()  # segments, constants, forgotten lists
        self._sending = threading.Lock()  # one sender at a time (the input pool)
        self._segments = {}  # start address -> (number, size)
        self._starts = []  # the start addresses, sorted (for views inside one)
        self._specs = {}  # id(array) -> (weak reference, spec) of arrays made here
        self._constants = {}  # id(array) -> (weak reference, token, contents)
        self._count = 0
        #: Copies of inputs the workers are done with, by (shape, dtype), the
        #: last freed last: taken again first, while still in a cache.
        self._free = OrderedDict()
        self._free_count = 0
        self._workers = []
        self._reader = None
        self._closing = False
        self._broken = None
        atexit.register(self._remove)

    def __repr__(self):
        batch = f", batch {self.batch}" if self.batch > 1 else ""
        return f"<{type(self).__name__} of {self.workers}{batch}>"

    @property
    def pids(self):
        """The worker processes' ids (empty until the first call)."""
        return [worker.process.pid for worker in self._workers]

    def _number(self):
        with self._lock:
            self._count += 1
            return self._count

    def allocate(self, shape, dtype):
        """
        A new array in shared memory, for a block's output: a worker writes
        a result into it in place.
        """
        dtype = np.dtype(dtype)
        count = int(np.prod(shape))
        size = max(1, count * dtype.itemsize)
        number = self._number()
        with open(os.path.join(self.directory, f"segment-{number}"), "w+b") as stream:
            stream.truncate(size)
            mapping = mmap.mmap(stream.fileno(), size)
        array = np.frombuffer(mapping, dtype, count).reshape(shape)
        address = array.__array_interface__["data"][0]
        with self._lock:
            self._segments[address] = (number, size)
            bisect.insort(self._starts, address)
        key = id(array)
        self._specs[key] = (weakref.ref(array, lambda ref: self._unspec(key, ref)),
                            (number, size, 0, array.shape, array.strides, dtype.str))
        # Once the mapping is gone — the array, every view of it, and so
        # every call given one — the segment is forgotten and its file
        # removed: nothing can need it any more.
        weakref.finalize(mapping, self._forget, address)
        return array

    def _unspec(self, key, ref):
        found = self._specs.get(key)
        if found is not None and found[0] is ref:
            del self._specs[key]

    def _forget(self, address):
        with self._lock:
            number, _ = self._segments.pop(address, (None, None))
            if number is None:
                return
            del self._starts[bisect.bisect_left(self._starts, address)]
            for worker in self._workers:
                worker.forgotten.append(number)
        try:
            os.unlink(os.path.join(self.directory, f"segment-{number}"))
        except OSError:
            pass

    def _spec(self, array):
        # (segment, size, offset, shape, strides, dtype) of an array in one
        # of the pool's segments, else None.
        found = self._specs.get(id(array))
        if found is not None and found[0]() is array:
            return found[1]
        address = array.__array_interface__["data"][0]
        with self._lock:
            index = bisect.bisect_right(self._starts, address) - 1
            if index < 0:
                return None
            start = self._starts[index]
            number, size = self._segments[start]
        low = high = address
        for count, stride in zip(array.shape, array.strides):
            reach = (count - 1) * stride
            low, high = (low + reach, high) if reach < 0 else (low, high + reach)
        if low < start or high + array.itemsize > start + size:
            return None
        return (number, size, address - start, array.shape, array.strides, array.dtype.str)

    def _path(self, array):
        # The file of the segment ``array`` is in (None if it is in none).
        spec = self._spec(array)
        return None if spec is None else os.path.join(self.directory, f"segment-{spec[0]}")

    def _token(self, array):
        # A constant's token: the same while the array lives with the same
        # contents (a block's buffer pool may make a read-only array
        # writeable again and refill it: a new token then).
        key = id(array)
        contents = array.tobytes()  # (at most CONSTANT_BYTES: well under a microsecond)
        found = self._constants.get(key)
        if found is not None and found[0]() is array:
            if found[2] == contents:
                return found[1]
            self._gone(found[1])
        token = self._number()

        def gone(ref):
            if self._constants.get(key, (None,))[0] is ref:
                del self._constants[key]
                self._gone(token)

        self._constants[key] = (weakref.ref(array, gone), token, contents)
        return token

    def _gone(self, number):
        # The workers forget a constant (at their next request).
        with self._lock:
            for worker in self._workers:
                worker.forgotten.append(number)
                worker.shipped.discard(number)

    def _start(self):
        import multiprocessing

        context = multiprocessing.get_context("forkserver" if os.name == "posix" else "spawn")
        for index in range(self.workers):
            requests, request_end = context.Pipe(duplex=False)
            result_end, results = context.Pipe(duplex=False)
            process = context.Process(target=_serve, args=(self.directory, requests, results),
                                      name=f"pyrf-compute-process_{index}", daemon=True)
            process.start()
            requests.close()  # (the worker's ends: a dead worker's pipes then end)
            results.close()
            self._workers.append(_Worker(process, request_end, result_end))
        self._reader = threading.Thread(target=self._read, daemon=True,
                                        name="pyrf-compute-process-results")
        self._reader.start()

    def send(self, function, args, deliver):
        """
        Start ``function(*args)`` in a worker process (a group of calls
        when ``function`` is the :class:`Mailbox`'s); ``deliver(True,
        result)`` or ``deliver(False, exception)`` is called in the pool's
        reader thread once it is done.
        """
        if function is _run_group:
            calls, single = args[0], False
        else:
            calls, single = [(function, args)], True
        with self._sending:
            if self._closing:
                raise RuntimeError(f"{self!r} is closed")
            if self._broken is not None:
                raise self._broken
            if not self._workers:
                self._start()
            worker = min(self._workers, key=lambda worker: len(worker.pending))
            held, shipped, encoded = [], [], []
            for call in calls:
                encoded.append(self._encode(call, worker, held, shipped))
            with self._lock:
                forgotten, worker.forgotten = worker.forgotten, []
            message = pickle.dumps((forgotten, shipped, encoded), -1)
            worker.pending.append((deliver, calls, single, held))
            try:
                worker.requests.send_bytes(message)
            except OSError:  # it died: the reader fails what it had, this too
                pass

    def _encode(self, call, worker, held, shipped):
        # (function, values, indexes of shared arrays, indexes of constants)
        function, args = call
        values, shared, constant = list(args), [], []
        for index, value in enumerate(args):
            if not isinstance(value, np.ndarray) or not value.size:
                continue
            spec = self._spec(value)
            if spec is None:
                if not value.flags.writeable and value.nbytes <= CONSTANT_BYTES:
                    token = values[index] = self._token(value)
                    constant.append(index)
                    if token not in worker.shipped:
                        worker.shipped.add(token)
                        shipped.append((token, value))
                    continue
                key = (value.shape, value.dtype.str)
                free = self._free.get(key)
                if free:
                    copy = free.pop()
                    self._free_count -= 1
                    self._free.move_to_end(key)
                else:
                    copy = self.allocate(value.shape, value.dtype)
                np.copyto(copy, value)
                held.append((key, copy))  # not reused until the worker is done
                spec = self._spec(copy)
            values[index] = spec
            shared.append(index)
        return function, values, shared, constant

    def _read(self):
        # The reader thread: answers, in order, and workers that end.  (One
        # selector for the pool's life: multiprocessing.connection.wait
        # makes and fills a new one per call.)
        selector = selectors.DefaultSelector()
        for worker in self._workers:
            selector.register(worker.results, selectors.EVENT_READ, (worker, True))
            selector.register(worker.process.sentinel, selectors.EVENT_READ, (worker, False))
        live = len(self._workers)
        while live:
            ready = [key.data for key, _ in selector.select()]
            # Answers first: what a worker sent before it ended is delivered.
            ready.sort(key=lambda found: not found[1])
            for worker, answer in ready:
                if answer:
                    try:
                        self._answered(worker, worker.results.recv_bytes())
                    except (EOFError, OSError):
                        selector.unregister(worker.results)  # its end: the sentinel says how
                    continue
                if worker.process.sentinel not in selector.get_map():
                    continue
                while worker.results in selector.get_map() and worker.results.poll():
                    try:
                        self._answered(worker, worker.results.recv_bytes())
                    except (EOFError, OSError):
                        break
                if worker.results in selector.get_map():
                    selector.unregister(worker.results)
                selector.unregister(worker.process.sentinel)
                live -= 1
                self._ended(worker)
        selector.close()

    def _answered(self, worker, answer):
        deliver, calls, single, held = worker.pending.popleft()
        if held:
            self._reuse(held)
        outcomes = [(True, calls[number][1][value]) if kind == 0 else (kind == 1, value)
                    for number, (kind, value) in enumerate(pickle.loads(answer))]
        if single:
            deliver(*outcomes[0])
        else:
            deliver(True, outcomes)

    def _reuse(self, held):
        # Copies a worker is done with go back to the free lists; beyond
        # twice the depth, those of the shape least recently used go.
        with self._sending:
            free = self._free
            for key, copy in held:
                found = free.get(key)
                if found is None:
                    found = free[key] = []
                found.append(copy)
            self._free_count += len(held)
            while self._free_count > 2 * self.depth:
                oldest = next(iter(free))
                if free[oldest]:
                    free[oldest].pop(0)
                    self._free_count -= 1
                if not free[oldest]:
                    del free[oldest]

    def _ended(self, worker):
        process = worker.process
        process.join(1)
        if self._closing and not worker.pending:
            return
        code = process.exitcode
        if code is not None and code < 0:
            try:
                how = f"killed by signal {-code} ({signal.Signals(-code).name})"
            except ValueError:
                how = f"killed by signal {-code}"
        else:
            how = f"exited with status {code}"
        with self._sending:  # no call is sent to it after this
            lost, worker.pending = list(worker.pending), deque()
            calls = sum(len(calls) for _, calls, _, _ in lost)
            error = BrokenProcessPool(
                f"{self!r}: worker process {process.pid} {how} with {calls} call(s) "
                f"unfinished; their results are lost and the pool takes no more work")
            if self._broken is None:
                self._broken = error
        for deliver, _, _, held in lost:
            held.clear()
            deliver(False, self._broken)

    def submit(self, function, *args):
        """
        Start ``function(*args)`` in a worker process; return its
        ``concurrent.futures.Future``.
        """
        return ThreadPool.submit(self, function, *args)

    def _remove(self):
        shutil.rmtree(self.directory, ignore_errors=True)

    def close(self):
        """
        Wait for the work sent, stop the processes and remove the shared
        segments.
        """
        with self._sending:
            self._closing = True
            for worker in self._workers:
                try:
                    worker.requests.send_bytes(b"")
                except OSError:
                    pass
        if self._reader is not None:
            self._reader.join()
        for worker in self._workers:
            worker.process.join()
            worker.requests.close()
            worker.results.close()
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
