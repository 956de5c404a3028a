"""
Fakes and helpers for testing graphs and blocks, ours and users' own.

Blocks (:mod:`.blocks`):

* :class:`array_source` plays given arrays (or chunks) as a stream;
* :class:`manual_source` emits a chunk each time the test says, and
  records the pauses and resumes it is asked for;
* :class:`recording_sink` records chunks and checks the stream's order;
* :class:`slow_sink` takes chunks as slowly as the test likes, to prove
  backpressure;
* :func:`assert_provides` verifies a block against an interface;
* :func:`split_array` cuts an array for re-chunking tests.

Running (:mod:`.running`):

* :func:`run_clock` drives a ``task.Clock`` until a graph is done;
* :func:`new_reactor`, :func:`run_until`, :func:`wait_for` run a fresh
  real reactor for a test that crosses loopback sockets;
* :func:`start_emulator` listens with an instrument emulator there.

Workers (:mod:`.workers`), without sockets or processes:

* :class:`WorkerPair`: a worker and a client graph on one clock, joined
  by treq's ``StubTreq``, at :data:`WORKER_URL`;
* :class:`FlakyClient` fails the first N requests;
* :class:`CuttingClient` loses every N-th poll's answer.

Importing this module imports neither twisted.web nor treq; a
:class:`WorkerPair` does, when made.
"""

from .blocks import (array_source, assert_provides, manual_source, recording_sink,
                     slow_sink, split_array)
from .running import (modules_loaded, new_reactor, poll_until, run_clock, run_until,
                      start_emulator, wait_for)
from .workers import WORKER_URL, CuttingClient, FlakyClient, WorkerPair

__all__ = [
    "array_source", "manual_source", "recording_sink", "slow_sink",
    "assert_provides", "split_array",
    "run_clock", "new_reactor", "run_until", "wait_for", "poll_until", "start_emulator",
    "modules_loaded",
    "WORKER_URL", "WorkerPair", "FlakyClient", "CuttingClient",
]
