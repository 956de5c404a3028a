"""
Blocks across processes and hosts: workers, ``process()`` and the
long-polled HTTP streams between them.

Importing this package (``import pyrf_blocks`` does) loads no HTTP code:
``twisted.web``, treq and OpenSSL are imported by the modules that need
them, when a block is placed, a stream is read or a worker listens.  The
worker itself is :class:`pyrf_blocks.net.worker.Worker`.
"""

from ..errors import RemoteError, TLSError, WorkerUnreachable
from .client import remote_block
from .placement import Place, placed_block, placed_sink, process
from .serve import Served, serve

__all__ = ["process", "Place", "placed_block", "placed_sink", "remote_block",
           "serve", "Served", "RemoteError", "WorkerUnreachable", "TLSError"]
