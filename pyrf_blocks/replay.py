"""
Replay: a pipeline file run over recordings instead of its live sources,
one graph per recording, here one after the other or on Dask distributed.

One rule feeds a recording to the pipeline (:func:`replay_pipeline`):
**each source block** (a block without inputs that is not a sink) **reads
the recording's channel of the same name** — or, where the recording has
one channel and the pipeline one source, that channel whatever the names.
The source becomes a :class:`~pyrf_blocks.blocks.recording.sigmf_source`
of that channel, free-running (as fast as the consumers take it).  A source
that already is a ``sigmf_source`` keeps its own parameters
(``chunk_size``, ``reference_level``) and only reads another path and
channel: a file written for recordings (``recording: {type:
sigmf_source, params: {path: unset}}``) is the one-channel case of the
same rule, not a case of its own.  Besides:

* recorders (``record_block``, ``record_channels``) are left out, so the
  recording is not written over while it is read;
* ``idle_timeout`` is switched off where a block has one: an idle timeout
  is counted in wall-clock time, which a replay does not share with the
  run that recorded it, so history stays deterministic.

Every other block, parameter and connection is the file's own, so the
outputs are those of the live run that made the recording (history =
live): device time comes from the recording to the nanosecond, and the
blocks do not depend on how their input is chunked.

:func:`replay` runs the pipeline over many recordings.  Recordings are
independent (strax's multi-run processing), so each runs whole in one
process — serially here, or on Dask distributed workers: a
``LocalCluster`` of this machine's cores, or the scheduler at an address.
Each worker runs one graph at a time, deterministically, so the results
equal a serial run's chunk for chunk, in the order of the recordings.  The
sources map the recording and read it chunk by chunk, so a recording
larger than memory streams through; only what the ``collector`` sinks keep
is held.  Dask is an extra: ``pip install 'pyrf_blocks[dask]'``.
"""

import copy
import functools
import io
import os
import threading
import uuid
from dataclasses import dataclass, field

from .block import Sink
from .blocks.recording import recording_channels
from .errors import PipelineError, ReplayError, SchedulerUnreachable, UnknownBlockType
from .pipeline.validate import check
from .registry import lookup

__all__ = ["replay_pipeline", "replay_one", "replay", "check_recordings", "local_cluster",
           "LOCAL_CLUSTER_CONFIG", "LOCAL_WORKERS_PER_CORE", "max_local_workers",
           "check_local_workers", "SCHEDULER_TIMEOUT",
           "RecordingResult", "RECORDERS", "CHUNK_SIZE"]

#: Block types that write recordings: left out of a replay.
RECORDERS = ("record_block", "record_channels")
#: Samples per chunk read from a recording unless a source or the caller says.
CHUNK_SIZE = 65536
#: Seconds a Dask scheduler at an address has to answer (connect and
#: handshake) before :func:`replay` gives up: a scheduler answers within
#: milliseconds on a LAN.  Dask's own client waits 30 s for a port that
#: refuses, and without end for one where something else listens.
SCHEDULER_TIMEOUT = 5.0

# One graph at a time per process: a Dask worker with several threads
# would otherwise run two graphs on the one global reactor at once.
_running = threading.Lock()


def _is_source(raw):
    if not isinstance(raw, dict) or raw.get("inputs"):
        return False
    try:
        factory = lookup(raw.get("type"))
    except UnknownBlockType:
        return False  # reported by the check
    return not (isinstance(factory, type) and issubclass(factory, Sink))


def replay_pipeline(document, recording, chunk_size=None):
    """
    The pipeline of ``document`` over ``recording`` (the rule above).

    :param document: a :class:`~pyrf_blocks.pipeline.loader.Document`
        (it is changed in place).
    :param recording: the SigMF recording's name or path.
    :param chunk_size: samples per chunk read from the recording; ``None``
        keeps a ``sigmf_source``'s own, else :data:`CHUNK_SIZE`.
    :return: ``(pipeline, notes, sources)``: the checked
        :class:`~pyrf_blocks.pipeline.validate.Pipeline`, lines saying
        what was changed, and ``{source block name: channel}``.
    :raise PipelineError: a source without a channel of the same name, no
        source at all, or any problem of the file, at its line.
    :raise ValueError: a recording that cannot be read.
    """
    channels = recording_channels(recording)
    data = document.data
    blocks = data.get("blocks") if isinstance(data, dict) else None
    if not isinstance(blocks, dict):
        return check(document), [], {}  # the check says what is wrong
    sources = [name for name, raw in blocks.items() if _is_source(raw)]
    shown = ", ".join(channels)
    if len(channels) == 1 and len(sources) == 1:
        chosen = {sources[0]: channels[0]}
    else:
        chosen, problems = {}, []
        for name in sources:
            if name in channels:
                chosen[name] = name
            else:
                problems.append(document.problem(
                    f"source {name!r} has no channel of that name in {recording} "
                    f"(its channels: {shown}); name the source blocks after the "
                    "recorded channels", ("blocks", name), key=True))
        if problems:
            raise PipelineError(problems)
    if not chosen:
        raise PipelineError([document.problem(f"no source block to replay {recording} into")])
    notes = []
    path = os.fspath(recording)
    for name, channel in chosen.items():
        raw = blocks[name]
        own = raw.get("params") if raw.get("type") == "sigmf_source" else None
        params = dict(own) if isinstance(own, dict) else {}
        params.update(path=path, channel=channel, paced=False)
        if chunk_size is not None or "chunk_size" not in params:
            params["chunk_size"] = chunk_size or CHUNK_SIZE
        blocks[name] = {"type": "sigmf_source", "params": params}
    for name in [n for n, raw in blocks.items()
                 if isinstance(raw, dict) and raw.get("type") in RECORDERS]:
        del blocks[name]
        notes.append(f"replay: recorder {name!r} left out: the recording is not "
                     "written while it is read")
    for name, raw in blocks.items():
        params = raw.get("params") if isinstance(raw, dict) else None
        if isinstance(params, dict) and params.get("idle_timeout") is not None:
            params["idle_timeout"] = None
            notes.append(f"replay: {name!r} idle_timeout off (history is deterministic)")
    return check(document), notes, chosen


@dataclass
class RecordingResult:
    """
    What one recording gave: ``recording`` (its path), ``sinks``
    (``{collector name: [Chunk, ...]}``), ``samples`` (per channel) and
    ``report`` (a line per sink: chunks taken, finished or not; a line per
    edge that dropped chunks).
    """

    recording: str
    sinks: dict
    samples: int
    report: list = field(default_factory=list)


@functools.lru_cache(maxsize=8)
def _parsed(pipeline_text, filename):
    from .pipeline.loader import load_document

    return load_document(pipeline_text, filename)


def _document(pipeline_text, filename):
    # A fresh Document for one recording (replay_pipeline changes its data),
    # the YAML parsed once per process: parsing took 2.1 ms of CPU and a copy
    # of the data 0.2 ms, which the client's check of every recording and each
    # task on a Dask worker pay per recording.
    from .pipeline.loader import Document

    parsed = _parsed(pipeline_text, filename)
    return Document(copy.deepcopy(parsed.data), parsed.filename, parsed._values,
                    parsed._keys)


def check_recordings(pipeline_text, recordings, chunk_size=None, filename="<pipeline>"):
    """
    Apply the rule to each of ``recordings`` without running anything.

    :return: ``(pipeline, notes)``: the first recording's checked pipeline
        and the notes (the same for every recording: they depend on the
        file alone).
    :raise PipelineError, ValueError: as :func:`replay_pipeline`, for the
        first recording that does not fit.
    """
    first = None
    for recording in recordings:
        result = replay_pipeline(_document(pipeline_text, filename), recording, chunk_size)
        first = first or result
    if first is None:
        raise ValueError("no recording to replay")
    return first[0], first[1]


def replay_one(pipeline_text, recording, chunk_size=None, filename="<pipeline>",
               progress=None, optimise=True):
    """
    Run the pipeline (YAML text) over ``recording`` in this process and
    return its :class:`RecordingResult`.  This is what each Dask task runs.

    :param progress: called now and then, in the reactor's thread, with
        the samples read so far and the samples there are (per channel).
    :param optimise: optimise the graph first (:mod:`~pyrf_blocks.optimise`),
        as ``pyrf-blocks run`` does: the same outputs, computed with less.
    :raise ReplayError: a block failed (its traceback is logged).
    """
    from twisted.internet import task

    from .blocks.sinks import collector
    from .graph import Graph
    from .pipeline import build

    pipeline, _, sources = replay_pipeline(_document(pipeline_text, filename), recording,
                                           chunk_size)
    with _running:
        graph = build(pipeline, Graph())
        readers = [graph.blocks[name] for name in sources]
        total = min(reader.sample_count for reader in readers)
        ticker = None
        if progress is not None:
            ticker = task.LoopingCall(
                lambda: progress(min(reader.samples_read for reader in readers), total))
            ticker.clock = graph.reactor
            graph.in_reactor_thread(ticker.start, 0.2)
        try:
            graph.run(optimise=optimise)
        except Exception as error:  # a block failed: the graph logged its traceback
            raise ReplayError(f"{recording}: {graph.failure_line(error, 'the pipeline')}"
                              ) from None
        finally:
            if ticker is not None and ticker.running:
                graph.in_reactor_thread(ticker.stop)
        if progress is not None:
            progress(min(reader.samples_read for reader in readers), total)
    lines = io.StringIO()
    graph.report(lines)
    sinks = {block.name: list(block.chunks) for block in graph.sinks
             if isinstance(block, collector)}
    return RecordingResult(str(recording), sinks, total, lines.getvalue().splitlines())


#: Dask settings of the local cluster :func:`replay` starts.  It has no
#: dashboard, so what only feeds one is slowed or off: each worker's
#: statistical profiler (a stack sample every 10 ms), the system monitors
#: (every 500 ms) and the event-loop ticks (every 20 ms in the scheduler,
#: each nanny and each worker; a loop blocked for seconds is still logged).
#: Idle, a cluster of 2 workers then costs about 18 ms of CPU per second
#: instead of 85 ms, CPU the recordings' graphs get instead.
LOCAL_CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.system-monitor.interval": "5s",
    "distributed.admin.system-monitor.gil.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.worker.memory.monitor-interval": "500ms",
}


#: Most processes of a local cluster per core of this machine: a graph per
#: recording keeps a core busy, so more only take turns, and each process
#: holds its own interpreter and imports (``--workers 100000`` started
#: processes for minutes before this bound).
LOCAL_WORKERS_PER_CORE = 4


def max_local_workers():
    """
    Most worker processes :func:`local_cluster` starts on this machine:
    :data:`LOCAL_WORKERS_PER_CORE` per core.
    """
    return LOCAL_WORKERS_PER_CORE * (os.cpu_count() or 1)


def check_local_workers(workers):
    """
    ``workers`` for :func:`local_cluster` (``None``: one per core), or
    ``ValueError`` saying the range it takes here.
    """
    most = max_local_workers()
    if workers is not None and (not isinstance(workers, int) or isinstance(workers, bool)
                                or not 1 <= workers <= most):
        raise ValueError(f"a local cluster takes 1 to {most} worker processes on this "
                         f"machine ({LOCAL_WORKERS_PER_CORE} per core), got {workers!r}")
    return workers


def local_cluster(workers=None):
    """
    The ``dask.distributed.LocalCluster`` :func:`replay` runs on when given
    no scheduler address: ``workers`` processes (one per core by default,
    at most :func:`max_local_workers`) of one thread each, no dashboard,
    :data:`LOCAL_CLUSTER_CONFIG`.
    """
    import dask
    from dask.distributed import LocalCluster

    check_local_workers(workers)

    with dask.config.set(LOCAL_CLUSTER_CONFIG):
        return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                            dashboard_address=None)


def _reach_scheduler(address, timeout):
    """
    Wait, ``timeout`` seconds at most, for the scheduler at ``address`` to
    answer Dask's handshake; :class:`~pyrf_blocks.errors.SchedulerUnreachable`
    if it does not.  (``Client(address, timeout=)`` bounds the connection
    but not the handshake after it, which never comes from a port where
    something else listens.)
    """
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed.comm import connect
    from distributed.security import Security

    async def handshake():
        arguments = Security().get_connection_args("client")
        comm = await asyncio.wait_for(connect(address, timeout=timeout, **arguments),
                                      timeout)
        await comm.close()

    # In a thread of its own: the caller may be running an event loop (a
    # notebook), where asyncio.run cannot.
    with ThreadPoolExecutor(1) as thread:
        try:
            thread.submit(asyncio.run, handshake()).result()
        except OSError as error:  # (a TimeoutError too)
            reason = str(error).splitlines()[0] if str(error) else "no answer"
            raise SchedulerUnreachable(f"no Dask scheduler answered at {address} within "
                                       f"{timeout:g} s ({reason})") from None


def _client(address, workers, timeout):
    from dask.distributed import Client

    if address:
        _reach_scheduler(address, timeout)
        return Client(address, timeout=timeout), None
    cluster = local_cluster(workers)
    return Client(cluster), cluster


def replay(pipeline_text, recordings, chunk_size=None, dask=False, address=None,
           workers=None, progress=False, filename="<pipeline>", client=None,
           scheduler_timeout=SCHEDULER_TIMEOUT, optimise=True):
    """
    Run the pipeline over each of ``recordings``, one graph per recording;
    return their :class:`RecordingResult` in the same order.  Every
    recording is checked against the pipeline (:func:`check_recordings`)
    before any runs.

    :param pipeline_text: the pipeline file's YAML.
    :param recordings: recording paths (SigMF names).
    :param chunk_size: samples per chunk read (see :func:`replay_pipeline`);
        the results do not depend on it.
    :param dask: run on Dask distributed; without it, one after the other
        here.
    :param address: a Dask scheduler's address (``tcp://host:8786``);
        ``None`` starts a ``LocalCluster`` of ``workers`` processes.
    :param workers: processes of the local cluster (one per core by
        default, at most :func:`max_local_workers`); only with ``dask``
        and no ``address`` or ``client`` (those have workers of their own).
    :param progress: show a progress bar (tqdm, on stderr): of the
        recordings, or of the samples of the only one when it runs here.
    :param client: a ``dask.distributed.Client`` to use (implies ``dask``),
        left open.
    :param scheduler_timeout: seconds the scheduler at ``address`` has to
        answer (see :data:`SCHEDULER_TIMEOUT`).
    :param optimise: optimise each graph (chain optimisation, as
        ``pyrf-blocks run`` does); ``False`` runs them as written.  The
        results are the same.
    :raise ReplayError: a block failed on a recording.
    :raise ~pyrf_blocks.errors.SchedulerUnreachable: no scheduler answered
        at ``address`` within ``scheduler_timeout`` seconds.
    """
    if workers is not None:
        if not dask or address or client is not None:
            raise ValueError("workers= sizes the local Dask cluster replay starts: it goes "
                             "with dask=True, without an address or a client")
        check_local_workers(workers)
    recordings = [os.fspath(path) for path in recordings]
    check_recordings(pipeline_text, recordings, chunk_size, filename)  # fail early, here
    here = not dask and client is None
    bar = None
    if progress:
        import sys

        from tqdm import tqdm
        if here and len(recordings) == 1:
            bar = tqdm(unit="Sa", unit_scale=True, desc="replay", file=sys.stderr,
                       mininterval=0.5)
        else:
            bar = tqdm(total=len(recordings), unit="recording", desc="replay",
                       file=sys.stderr)
    try:
        if here:
            if bar is not None and len(recordings) == 1:
                def samples(done, total):
                    bar.total = total
                    bar.update(done - bar.n)

                return [replay_one(pipeline_text, recordings[0], chunk_size, filename,
                                   samples, optimise)]
            results = []
            for recording in recordings:
                results.append(replay_one(pipeline_text, recording, chunk_size, filename,
                                          optimise=optimise))
                if bar is not None:
                    bar.update()
            return results
        from dask.distributed import as_completed

        given = client is not None
        cluster = None
        if not given:
            client, cluster = _client(address, workers, scheduler_timeout)
        try:
            token = uuid.uuid4().hex[:8]
            count = len(recordings)
            # One map, not a submit per recording: the scheduler gets every
            # task in one message, so no worker starts a batch (the
            # client's batched sends) after the others.
            tasks = client.map(replay_one, [pipeline_text] * count, recordings,
                               [chunk_size] * count, [filename] * count, [None] * count,
                               [optimise] * count, pure=False,
                               key=[f"replay-{token}-{index}" for index in range(count)])
            # Each result is fetched as its task ends, while the others
            # still run: only the last one's transfer is left after the
            # last task, not a gather of all of them.
            results = {}
            for task, result in as_completed(tasks, with_results=True):
                results[task.key] = result
                if bar is not None:
                    bar.update()
            return [results[task.key] for task in tasks]
        finally:
            if not given:
                client.close()
            if cluster is not None:
                cluster.close()
    finally:
        if bar is not None:
            bar.close()
