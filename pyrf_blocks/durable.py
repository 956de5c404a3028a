"""
The durable watermark: how far a source's stream has its effect committed
everywhere downstream, so that the source acknowledges exactly that (an
MQTT message only once what it caused is in the store).

**The rule.**  Device time is the one clock every block keeps: a chunk's
``end`` says "the stream is complete before this time".  Every block keeps
it in one more sense, which the graph relies on: *an output chunk ending
at E carries, with the chunks before it, the whole effect of the input
rows before E*.  A stateless block (a filter, a transform, a KPI per row)
emits each input chunk's rows over the same range; a window block's main
output ends where "every window starting earlier is final" (all the
windows of a row before E are final, so emitted).  So a consumer that has
durably handled an output up to E has durably handled the effect of the
input before E, and the watermark is a plain minimum:

* a durable sink (:class:`~pyrf_blocks.interfaces.IDurableSink`, such as
  ``sensor_store``) reports ``durable_through``: the end of the last chunk
  whose rows are committed;
* any other sink (a viewer, a collector) keeps nothing beyond the process,
  so what it has taken (its input's :attr:`~pyrf_blocks.block.InputPort.through`)
  is done;
* a block between them is durable up to the least of what it has taken
  and its consumers' watermarks, over every output;
* a source's watermark is the least over its consumers; a stream handed to
  another process counts once handed over (durability does not cross
  processes).

Rows queued on an edge, held in a synchroniser or in a window not yet
final are past every consumer's watermark, so they hold it back by
themselves.  Rows an edge drops on purpose (``drop_oldest``, ``latest``)
are counted by the edge and acknowledged with the rest.

Every function here runs on the reactor thread and walks the live graph
(the edges connected now), so a consumer added while running counts at
once.
"""

from .block import InputPort, block_of
from .interfaces import IAcknowledgingSource, IDurableSink, ISink

__all__ = ["watermark", "acknowledging_sources", "durable_sinks", "notify_sources"]


def _least(marks):
    if not marks or any(mark is None for mark in marks):
        return None
    return min(marks)


def watermark(block):
    """
    Device time (ns) before which the effect of ``block``'s output is
    durable in every consumer, directly or through others; None while
    unknown (a consumer has taken nothing yet, or nothing consumes it).
    """
    marks = [_edge_watermark(output, edge)
             for output in block.outputs.values() for edge in output.edges]
    return _least(marks)


def _edge_watermark(output, edge):
    port = edge.consumer
    if not isinstance(port, InputPort):
        # A stream to another process, or a consumer outside the graph:
        # done once handed over (nothing left in the edge's queue).
        return output.device_end if edge.depth == 0 else None
    consumer = port.block
    if consumer.failure is not None:
        return port.through  # a failed block takes nothing more: not waited for
    if IDurableSink.providedBy(consumer):
        return _least([port.through, consumer.durable_through])
    if ISink.providedBy(consumer):
        return port.through
    if not consumer.edges:
        # Its consumers have left (finished, or closed): what it emitted
        # was taken, and nothing waits for what it holds.
        return port.through
    return _least([port.through, watermark(consumer)])


def acknowledging_sources(block):
    """
    The :class:`~pyrf_blocks.interfaces.IAcknowledgingSource` blocks
    upstream of ``block``, each once.
    """
    found, seen = [], set()
    stack = list(block.inputs)
    while stack:
        upstream = block_of(stack.pop())
        if id(upstream) in seen:
            continue
        seen.add(id(upstream))
        if IAcknowledgingSource.providedBy(upstream):
            found.append(upstream)
        stack.extend(upstream.inputs)
    return found


def durable_sinks(block):
    """
    The :class:`~pyrf_blocks.interfaces.IDurableSink` blocks downstream of
    ``block`` through the edges connected now, each once.
    """
    found, seen = [], set()
    stack = [block]
    while stack:
        current = stack.pop()
        for edge in getattr(current, "edges", ()):
            port = edge.consumer
            if not isinstance(port, InputPort) or id(port.block) in seen:
                continue
            seen.add(id(port.block))
            if IDurableSink.providedBy(port.block):
                found.append(port.block)
            stack.append(port.block)
    return found


def notify_sources(sink):
    """
    ``sink`` has committed more: tell the acknowledging sources upstream.
    """
    for source in acknowledging_sources(sink):
        source.durable_advanced()
