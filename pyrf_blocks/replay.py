"""
History = live: the same pipeline file, run over a recording of its
sources instead of the sources themselves.

:func:`replay_pipeline` takes a pipeline file as read
(:func:`~pyrf_blocks.pipeline.loader.read_document`) and a SigMF recording
(one channel, or several written by
:class:`~pyrf_blocks.blocks.recording.record_channels`), and returns the
checked pipeline in which

* each source block (a block without inputs that is not a sink) is
  replaced by a :class:`~pyrf_blocks.blocks.recording.sigmf_source` of the
  recording's channel of the same name (with one channel and one source,
  that channel), free-running: as fast as the consumers take it;
* recorders (``record_block``, ``record_channels``) are left out, so the
  recording is not written over while it is read;
* ``idle_timeout`` is switched off where a block has one: an idle timeout
  is counted in wall-clock time, which a replay does not share with the
  run that recorded it, so history stays deterministic.

Every other block, parameter and connection is the file's own, so the
outputs are those of the live run that made the recording: device time
comes from the recording to the nanosecond, and the blocks do not depend
on how their input is chunked.
"""

import os

from .block import Sink
from .blocks.recording import recording_channels
from .errors import PipelineError, UnknownBlockType
from .pipeline.validate import check
from .registry import lookup

__all__ = ["replay_pipeline", "RECORDERS"]

#: Block types that write recordings: left out of a replay.
RECORDERS = ("record_block", "record_channels")


def _is_source(raw):
    if not isinstance(raw, dict) or raw.get("inputs"):
        return False
    try:
        factory = lookup(raw.get("type"))
    except UnknownBlockType:
        return False  # reported by the check
    return not (isinstance(factory, type) and issubclass(factory, Sink))


def replay_pipeline(document, recording, chunk_size=65536):
    """
    The pipeline of ``document`` over ``recording``.

    :param document: a :class:`~pyrf_blocks.pipeline.loader.Document`
        (it is changed in place).
    :param recording: the SigMF recording's name or path.
    :param chunk_size: samples per chunk read from the recording.
    :return: ``(pipeline, notes, sources)``: the checked
        :class:`~pyrf_blocks.pipeline.validate.Pipeline`, lines saying
        what was changed, and ``{source block name: channel}``.
    :raise PipelineError: a source without a channel of the same name, or
        any problem of the file, at its line.
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
        blocks[name] = {"type": "sigmf_source",
                        "params": {"path": path, "channel": channel, "paced": False,
                                   "chunk_size": chunk_size}}
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
