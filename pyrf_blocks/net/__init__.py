"""
Blocks across processes and hosts: workers, ``process()`` and the
long-polled HTTP streams between them.
"""

from .client import RemoteError, WorkerUnreachable, remote_block
from .placement import Place, placed_block, placed_sink, process
from .serve import serve
from .tls import TLSError
from .worker import Worker

__all__ = ["process", "Place", "placed_block", "placed_sink", "remote_block", "Worker",
           "serve", "RemoteError", "WorkerUnreachable", "TLSError"]
