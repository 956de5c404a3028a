"""
Blocks across processes and hosts: workers, ``process()`` and the
long-polled HTTP streams between them.
"""

from .client import RemoteError, WorkerUnreachable, remote_block
from .process import Process, placed_block, placed_sink, process
from .serve import serve
from .tls import TLSError
from .worker import Worker

__all__ = ["process", "Process", "placed_block", "placed_sink", "remote_block", "Worker",
           "serve", "RemoteError", "WorkerUnreachable", "TLSError"]
