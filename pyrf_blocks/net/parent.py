"""
A child worker's tie to the process that started it: it must not outlive it.

Two mechanisms, because either alone has a gap: the kernel sends the child
SIGKILL when the parent dies (``PR_SET_PDEATHSIG``, Linux), and the child
stops when its stdin, a pipe from the parent, reaches end-of-file (any
POSIX system, and also when the parent closes it on purpose).
"""

import ctypes
import os
import signal
import sys

from twisted.internet import protocol, stdio

__all__ = ["tie_to_parent"]

_PR_SET_PDEATHSIG = 1


class _ParentPipe(protocol.Protocol):
    def __init__(self, reactor):
        self.reactor = reactor

    def connectionLost(self, reason):
        if self.reactor.running:
            self.reactor.stop()


def _die_with_parent(parent_pid):
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent_pid:
        # The parent died before the request above took effect.
        os._exit(1)


def tie_to_parent(parent_pid, reactor):
    """
    Exit with the parent ``parent_pid``; return a function that writes a
    line to the parent (stdout is then owned by the reactor).
    """
    _die_with_parent(parent_pid)
    pipe = stdio.StandardIO(_ParentPipe(reactor), reactor=reactor)

    def announce(line):
        pipe.write(line.encode("utf-8") + b"\n")
    return announce
