"""
The global reactor in a thread of its own, so that ``run()`` can be called
again and again in one process: a script that records and then replays, an
interactive interpreter, a notebook.

Twisted's reactor runs once per process.  The first :func:`~pyrf_blocks.run`
that needs the global reactor starts it in a daemon thread; the calling
thread waits there until the graph is done.  When the graph is done the
reactor thread *parks*: it blocks in one of its own calls until the next
run.  Between runs, then, nothing runs in the background, as in a script
before its first run: a paced source made in one notebook cell does not
stream until a later cell calls ``run()``, and code that builds blocks
(which activates sinks, which schedule reactor calls) touches the graph
and the reactor directly, with nobody else touching them.  While a run is
in progress, calls from other threads go through the reactor thread
(:meth:`ReactorThread.call`, ``blockingCallFromThread``); calls from the
reactor thread itself, from a parked or never started reactor, and on a
``task.Clock`` stay direct and synchronous.

Why not crochet, the library for Twisted from blocking code (checked
2026-11-30 with crochet 2.1.1, its last release, 2023-07, on Twisted 26.10
and Python 3.11):

- ``crochet.setup()`` runs the reactor free in the background from then
  on: a paced simulated instrument with a collector collected 207 chunks in
  the 0.5 s after the collector was made, before any run, so
  ``run(duration=...)`` would no longer mean what it says and a collector
  made in one notebook cell would grow without bound until the next.
- It starts Twisted's global logging (into the ``logging`` module) and
  replaces ``warnings.showwarning`` as a side effect: our commands' own log
  set-up (:func:`~pyrf_blocks.commands.options.log_warnings_to_stderr`)
  then printed "primary log target selected twice", and every warning
  came out twice.
- Every result it waits for calls ``threading.Event.isSet()``, deprecated
  since Python 3.10: a ``DeprecationWarning`` per call.
- Its ``wait_for`` refuses to run in the reactor thread, and knows nothing
  of ``task.Clock``: the synchronous path our tests rely on would be ours
  to write anyway, as would signal handling (with the reactor in another
  thread nothing handles SIGTERM: the process just dies, sinks unflushed).

What we take from it: reaping child processes by polling (Twisted's SIGCHLD
handler needs the main thread) and stopping the reactor as soon as the main
thread ends, before Python joins the reactor's worker threads (``atexit``
alone runs after that join: the reactor's thread pool, first used from
the main thread between two runs, kept a script from ever exiting); here a
thread joins the main thread instead of polling it.

A reactor that must run in the main thread (Twisted on Qt's event loop,
:func:`pyrf_blocks.gui.loop.install`) is declared with
:func:`run_in_main_thread`; :meth:`Graph.run <pyrf_blocks.graph.Graph.run>`
then runs it there, once per process, as before.
"""

import atexit
import signal
import sys
import threading
from functools import partial

from twisted.internet import task, threads
from twisted.python.failure import Failure
from twisted.python.runtime import platform

__all__ = ["ReactorThread", "reactor_thread", "running_elsewhere",
           "run_in_main_thread", "is_global_reactor"]

#: Seconds between two reaps of exited child processes while a run is on.
REAP_INTERVAL = 0.1
#: Seconds between two looks at the signals received while ``run()`` waits.
WAIT_STEP = 0.1
#: Longest wait, at exit, for the reactor's shutdown (children let go).
SHUTDOWN_TIMEOUT = 10.0

_thread = None
_main_thread_reactor = None


def is_global_reactor(reactor):
    """
    True if ``reactor`` is the installed global reactor (not a
    ``task.Clock`` or another reactor given to a graph).
    """
    return sys.modules.get("twisted.internet.reactor") is reactor


def run_in_main_thread(reactor):
    """
    Declare that ``reactor``, the global reactor, must run in the main
    thread (Qt's event loop must): ``run()`` then runs it there, once per
    process, instead of in a thread of its own.
    """
    global _main_thread_reactor
    if _thread is not None and _thread.reactor is reactor:
        raise RuntimeError("the reactor already runs in a thread of its own")
    _main_thread_reactor = reactor


def reactor_thread(reactor):
    """
    The :class:`ReactorThread` that runs ``reactor`` (made on first use), or
    ``None`` when ``reactor`` is not the global reactor or must run in the
    main thread.
    """
    global _thread
    if reactor is _main_thread_reactor or not is_global_reactor(reactor):
        return None
    if _thread is None or _thread.reactor is not reactor:
        _thread = ReactorThread(reactor)
    return _thread


def running_elsewhere():
    """
    The :class:`ReactorThread` of the global reactor while a run keeps it
    busy in its thread and the caller is in another thread; ``None``
    otherwise, when the reactor may be used directly.
    """
    thread = _thread
    if thread is None or not thread.busy or thread.in_its_thread():
        return None
    return thread


class _Run:
    """
    One ``run()``: its graph, its outcome, and the event the waiting
    thread waits on.
    """

    def __init__(self, graph):
        self.graph = graph
        self.result = None
        self.delayed = None
        self.ended = threading.Event()


class ReactorThread:
    """
    Runs a reactor in a daemon thread, one graph at a time, parked between
    runs.  See the module's description.
    """

    def __init__(self, reactor):
        self.reactor = reactor
        self.thread = None
        #: Set while the reactor thread waits at the gate (or before it
        #: started): other threads may then use the reactor directly.
        self._parked = threading.Event()
        self._parked.set()
        self._gate = threading.Event()
        self._current = None
        self._runs = threading.Lock()
        self._shutdown_started = False

    def __repr__(self):
        state = ("not started" if self.thread is None else
                 "parked" if self._parked.is_set() else "running")
        return f"<ReactorThread {state}>"

    @property
    def busy(self):
        """
        True while the reactor runs in its thread (a run is in progress, or
        one was abandoned and its graph is still finishing).
        """
        return (self.thread is not None and not self._parked.is_set()
                and self.thread.is_alive())

    def in_its_thread(self):
        """
        True when called from the reactor's own thread.
        """
        return self.thread is not None and threading.current_thread() is self.thread

    def call(self, function, *args, **kwargs):
        """
        ``function(*args, **kwargs)`` in the reactor's thread, its result
        (or exception) here.  Direct and synchronous unless the reactor is
        busy in its thread and this is another thread.
        """
        if self.busy and not self.in_its_thread():
            return threads.blockingCallFromThread(self.reactor, function, *args, **kwargs)
        return function(*args, **kwargs)

    def run(self, graph, duration=None):
        """
        Run the reactor until ``graph`` is done, or for ``duration`` seconds
        and then stop it cleanly (see :meth:`Graph.run
        <pyrf_blocks.graph.Graph.run>`); re-raise a block's exception.
        Ctrl-C or SIGTERM stop the graph: the sinks finish with what they
        have and this returns.  A second Ctrl-C while they finish raises
        KeyboardInterrupt at once (a second SIGTERM, SystemExit).
        """
        if self.in_its_thread():
            raise RuntimeError(f"{graph!r}: run() waits for a graph, so it cannot be "
                               "called from the reactor's own thread (a block or a "
                               "callback); wait for graph.done() there instead")
        if not self._runs.acquire(blocking=False):
            raise RuntimeError(f"{graph!r}: another run() is in progress in another "
                               "thread; wait for this graph with graph.done() in it")
        try:
            run = _Run(graph)
            self._current = run
            with _Interruptions() as signals:
                self.call(self._begin, run, duration)
                if not run.ended.is_set():
                    self._resume()
                self._wait(run, signals)
        finally:
            self._runs.release()
        if isinstance(run.result, Failure):
            run.result.raiseException()

    def _begin(self, run, duration):
        if duration is not None:
            run.delayed = self.reactor.callLater(duration, run.graph.stop)
        run.graph.done().addBoth(self._finished, run)

    def _finished(self, result, run):
        run.result = result
        if run.delayed is not None and run.delayed.active():
            run.delayed.cancel()
        if self.busy and self.in_its_thread():
            # Park once the current call stack (a sink's end, deep in a
            # chunk's delivery) has unwound.
            self.reactor.callLater(0, self._park, run)
        else:
            run.ended.set()  # done before the reactor had to run

    def _park(self, run):
        if run is not self._current:
            return  # an abandoned run: the reactor runs on until a later one ends
        self._gate.clear()
        self._parked.set()
        run.ended.set()
        self._gate.wait()

    def _resume(self):
        if self.thread is None:
            self._start()
        elif self._parked.is_set():
            self._parked.clear()
            self._gate.set()

    def _start(self):
        if platform.type == "posix":
            from twisted.internet.process import reapAllProcesses
            reaper = task.LoopingCall(reapAllProcesses)
            reaper.clock = self.reactor
            reaper.start(REAP_INTERVAL, now=False)
        self._parked.clear()
        self.thread = threading.Thread(
            target=partial(self.reactor.run, installSignalHandlers=False),
            name="pyrf_blocks reactor", daemon=True)
        self.thread.start()
        # Stop the reactor when the main thread ends, before Python joins
        # the threads left (the reactor's thread pool's among them), and
        # wait for its shutdown at exit.
        threading.Thread(target=self._watch_main_thread, name="pyrf_blocks exit",
                         daemon=True).start()
        atexit.register(self.shutdown)

    def _watch_main_thread(self):
        threading.main_thread().join()
        self.shutdown(wait=False)

    def shutdown(self, wait=True):
        """
        Stop the reactor (its shutdown triggers let child workers go) and,
        with ``wait``, wait for its thread to end.
        """
        if self.thread is None:
            return
        if not self._shutdown_started:
            self._shutdown_started = True
            self._current = None
            self.reactor.callFromThread(self.reactor.stop)
            self._parked.clear()
            self._gate.set()
        if wait and threading.current_thread() is not self.thread:
            self.thread.join(SHUTDOWN_TIMEOUT)

    def _wait(self, run, signals):
        """
        Wait for ``run`` to end.  The first signal stops its graph; a second
        one, while the sinks finish, stops the waiting.
        """
        stopping = False
        while True:
            try:
                if run.ended.wait(WAIT_STEP):
                    return
            except KeyboardInterrupt:  # a SIGINT handler of the user's own
                signals.received.append(signal.SIGINT)
            if signals.received and not stopping:
                stopping = True
                self.call(run.graph.stop)
            elif len(signals.received) > 1:
                self._current = None
                if signals.received[-1] == signal.SIGINT:
                    raise KeyboardInterrupt
                raise SystemExit(128 + signal.SIGTERM)


class _Interruptions:
    """
    While ``run()`` waits in the main thread, Ctrl-C and SIGTERM are
    recorded rather than acted on at once: the waiting loop stops the graph
    (the handlers before are restored after).  Python's own handlers would
    raise KeyboardInterrupt wherever the main thread is, or end the
    process at once, sinks unflushed.  A SIGINT handler of the user's own
    is left alone.
    """

    def __init__(self):
        self.received = []
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
                self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._handle)
            self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._handle)
        return self

    def __exit__(self, *exc_info):
        for number, previous in self._previous.items():
            signal.signal(number, signal.SIG_DFL if previous is None else previous)

    def _handle(self, number, frame):
        self.received.append(number)
