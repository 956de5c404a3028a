"""
History: the same pipeline over many recordings, one graph per recording,
serially or on Dask distributed.

A pipeline file that reads a recording through a ``sigmf_source`` block is
run once per recording, with that block's ``path`` set to the recording;
the chunks that its ``collector`` sinks keep are the recording's result.
Recordings are independent (strax's multi-run processing), so each runs
whole on one Dask worker: a ``LocalCluster`` of this machine's cores by
default, or the scheduler at an address.  The source maps the recording's
samples and reads them chunk by chunk, so a recording larger than memory
streams through; only what the collectors keep (``keep: 1`` after a max
hold, say) is held.

Results come back in the order of the recordings and equal a serial run's
chunk for chunk (each graph runs alone in its worker, deterministically).
Dask is an extra: ``pip install 'pyrf_blocks[dask]'``.
"""

import threading
from dataclasses import dataclass

__all__ = ["RecordingResult", "replay_one", "replay", "recording_source"]

# One graph at a time per process: a Dask worker with several threads
# would otherwise run two graphs on the one global reactor at once.
_running = threading.Lock()


@dataclass
class RecordingResult:
    """
    What one recording gave: ``recording`` (its path), ``sinks``
    (``{collector name: [Chunk, ...]}``) and ``samples`` (how many the
    source read).
    """

    recording: str
    sinks: dict
    samples: int


def recording_source(pipeline, source=None):
    """
    The name of the ``sigmf_source`` block of a checked ``pipeline`` that
    reads the recordings: ``source`` if given, else its only one.

    :raises ValueError: naming the blocks when there is none, several, or
        ``source`` is not one.
    """
    names = [name for name, block in pipeline.blocks.items()
             if block.type_name == "sigmf_source"]
    if source is not None:
        if source not in names:
            raise ValueError(f"{pipeline.filename}: {source!r} is not a sigmf_source block "
                             f"(sigmf_source blocks: {', '.join(names) or 'none'})")
        return source
    if len(names) != 1:
        raise ValueError(f"{pipeline.filename}: history needs one sigmf_source block to read "
                         f"the recordings, found {len(names)}"
                         + (f" ({', '.join(names)}): choose one" if names else ""))
    return names[0]


def replay_one(pipeline_text, recording, source=None, filename="<pipeline>"):
    """
    Run the pipeline (YAML text) over ``recording`` in this process and
    return its :class:`RecordingResult`.  This is what each Dask task
    runs.
    """
    from .blocks.sinks import collector
    from .graph import Graph
    from .pipeline import build, check_text

    pipeline = check_text(pipeline_text, filename)
    name = recording_source(pipeline, source)
    pipeline.blocks[name].params["path"] = str(recording)
    with _running:
        graph = build(pipeline, Graph())
        graph.run()
    sinks = {block.name: list(block.chunks) for block in graph.sinks
             if isinstance(block, collector)}
    return RecordingResult(str(recording), sinks, graph.blocks[name].sample_count)


def _client(address, workers):
    from dask.distributed import Client, LocalCluster

    if address:
        return Client(address), None
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None)
    return Client(cluster), cluster


def replay(pipeline_text, recordings, source=None, dask=False, address=None,
           workers=None, progress=False, filename="<pipeline>", client=None):
    """
    Run the pipeline over each of ``recordings``; return their
    :class:`RecordingResult` in the same order.

    :param pipeline_text: the pipeline file's YAML.
    :param recordings: recording paths (SigMF names).
    :param source: the ``sigmf_source`` block that reads them, if the
        pipeline has several.
    :param dask: run on Dask distributed; without it, one after the other
        here.
    :param address: a Dask scheduler's address (``tcp://host:8786``);
        ``None`` starts a ``LocalCluster`` of ``workers`` processes.
    :param workers: processes of the local cluster (one per core by
        default).
    :param progress: show a progress bar (tqdm) over the recordings.
    :param client: a ``dask.distributed.Client`` to use (implies ``dask``),
        left open.
    """
    from .pipeline import check_text

    recording_source(check_text(pipeline_text, filename), source)  # fail early, here
    recordings = [str(path) for path in recordings]
    bar = None
    if progress:
        from tqdm import tqdm
        bar = tqdm(total=len(recordings), unit="recording", desc="history")
    try:
        if not dask and client is None:
            results = []
            for recording in recordings:
                results.append(replay_one(pipeline_text, recording, source, filename))
                if bar is not None:
                    bar.update()
            return results
        from dask.distributed import as_completed

        given = client is not None
        if given:
            cluster = None
        else:
            client, cluster = _client(address, workers)
        try:
            tasks = [client.submit(replay_one, pipeline_text, recording, source, filename,
                                   pure=False, key=f"replay-{index}")
                     for index, recording in enumerate(recordings)]
            for _ in as_completed(tasks):
                if bar is not None:
                    bar.update()
            return client.gather(tasks)
        finally:
            if not given:
                client.close()
            if cluster is not None:
                cluster.close()
    finally:
        if bar is not None:
            bar.close()
