"""
Twisted and Qt on one event loop.

Qt owns the loop (``qasync.QEventLoop``, an asyncio loop driven by Qt's),
and Twisted runs on it through ``asyncioreactor``: reactor timers and
sockets, Qt timers and repaints are all served by the same thread, so the
window never waits on the network and the network never waits on the window.

Installing it is an explicit step, taken once per process before anything
imports ``twisted.internet.reactor`` (the core imports it only when a graph
first needs it): :func:`install`.  ``pyrf-blocks view`` takes it; a script
that opens a window takes it first::

    from pyrf_blocks.gui import loop
    loop.install()

A windowed display made without it says so, and names this fix.  Qt's loop
runs in the main thread, so such a graph runs once per process (see
:mod:`pyrf_blocks.reactor_thread`); headless displays need none of this.
"""

import asyncio
import sys

from ..errors import ReactorMismatch

__all__ = ["install", "installed", "event_loop", "application"]

#: ``(reactor, loop)`` once :func:`install` has put the reactor on Qt's loop.
_installed = None


def application():
    """
    The ``QApplication``, created if there is none yet.
    """
    import pyqtgraph as pg
    return pg.mkQApp("pyrf_blocks")


def installed():
    """
    True once :func:`install` has put the global reactor on Qt's loop.
    """
    return _installed is not None


def event_loop():
    """
    The asyncio loop (``qasync.QEventLoop``) that :func:`install` put the
    reactor on.

    :raises ReactorMismatch: if :func:`install` was not called.
    """
    if _installed is None:
        raise ReactorMismatch("Twisted is not on Qt's event loop: call "
                              "pyrf_blocks.gui.loop.install() first")
    return _installed[1]


def install():
    """
    Make Qt's event loop the reactor's; return the reactor.  Idempotent.
    The reactor then runs in the main thread, where Qt must.

    :raises ReactorMismatch: if another reactor was installed first.
    """
    global _installed
    if _installed is not None:
        return _installed[0]
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor
        raise ReactorMismatch(
            f"the spectrum viewer needs Twisted on Qt's event loop, but "
            f"{type(reactor).__name__} was installed first: call "
            "pyrf_blocks.gui.loop.install() before anything imports "
            "twisted.internet.reactor (before building the graph)")
    app = application()
    import qasync
    from twisted.internet import asyncioreactor

    from ..reactor_thread import run_in_main_thread
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
    from twisted.internet import reactor
    run_in_main_thread(reactor)
    _installed = (reactor, loop)
    return reactor
