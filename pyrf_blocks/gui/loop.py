"""
Twisted and Qt on one event loop.

Qt owns the loop (``qasync.QEventLoop``, an asyncio loop driven by Qt's),
and Twisted runs on it through ``asyncioreactor``: reactor timers and
sockets, Qt timers and repaints are all served by the same thread, so the
window never waits on the network and the network never waits on the window.

The reactor must be installed before anything imports
``twisted.internet.reactor``; :func:`install` does it, or reports clearly
that another reactor came first.
"""

import asyncio
import sys

__all__ = ["install", "application", "ReactorMismatch"]


class ReactorMismatch(RuntimeError):
    """
    Another reactor was installed before the Qt loop could be.
    """


def application():
    """
    The ``QApplication``, created if there is none yet.
    """
    import pyqtgraph as pg
    return pg.mkQApp("pyrf_blocks")


def install():
    """
    Make Qt's event loop the reactor's; return the reactor.  Idempotent.

    :raises ReactorMismatch: if a reactor not running on a Qt loop was
        installed first.
    """
    app = application()
    if "twisted.internet.reactor" in sys.modules:
        from twisted.internet import reactor
        loop = getattr(reactor, "_asyncioEventloop", None)
        if loop is None or type(loop).__module__.split(".")[0] != "qasync":
            raise ReactorMismatch(
                f"the spectrum viewer needs Twisted on Qt's event loop, but "
                f"{type(reactor).__name__} was installed first: call "
                "pyrf_blocks.gui.loop.install() (or create the display) before "
                "anything imports twisted.internet.reactor")
        return reactor
    import qasync
    from twisted.internet import asyncioreactor
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    asyncioreactor.install(loop)
    from twisted.internet import reactor
    return reactor
