"""
The contracts between blocks, as ``zope.interface`` declarations.

Every block says which of these it provides with ``@implementer`` (or, for
blocks whose output kind follows their input, ``alsoProvides`` at
construction), and every block requires producer interfaces of its inputs.
Flow control uses Twisted's own vocabulary: an edge is an
:class:`~twisted.internet.interfaces.IPushProducer` towards its consumer, and
a block is an ``IPushProducer`` towards its edges, so a full queue pauses the
producer all the way back to the source.
"""

from twisted.internet.interfaces import IConsumer, IPushProducer
from zope.interface import Attribute, Interface


class IBlock(Interface):
    """
    One processing step of a graph.
    """

    name = Attribute("Name of the block, unique within its graph (str).")
    label = Attribute("How messages name it: type and name (str).")
    graph = Attribute("The Graph this block belongs to.")
    inputs = Attribute("Tuple of the producers this block consumes, in order.")
    active = Attribute(
        "True while the block is connected to its inputs (it is a sink, or "
        "something downstream consumes it)."
    )
    outputs = Attribute(
        "Mapping of output name to IOutput, the main output first; empty for "
        "a sink."
    )


class IBlockHooks(Interface):
    """
    What a block author writes.  The runtime (:mod:`pyrf_blocks.block`)
    calls these and nothing else; it owns the ports, edges, pausing and
    lazy connection.  Every hook has a default that does nothing.

    Besides these, a block with inputs implements ``compute(chunk)``, or
    ``compute(a, b, ...)`` with one parameter per input: it handles one
    chunk per input, re-cut to the same range of device time
    (synchronised), in order, and emits results with ``self.emit(...)``.
    (Its arity follows the block's inputs, which an interface cannot
    declare, so it is described here rather than below.)
    """

    def reset():
        """
        Forget what was seen before: called each time the block connects to
        its inputs, before :meth:`on_start`.
        """

    def compute_input(index, chunk):
        """
        Handle one chunk of input ``index``, for a block that treats its
        inputs independently (``synchronised = False``).
        """

    def flush():
        """
        Every input has ended: emit whatever is still held back.  The
        outputs end after it returns.
        """

    def on_start():
        """
        The block is connected and something consumes it: a source starts
        producing (connects, schedules its first chunk).
        """

    def on_stop():
        """
        Stop producing: the last consumer left, the stream was ended or the
        graph failed.  May be called more than once.
        """

    def on_input_end(index):
        """
        Input ``index`` has ended while others go on (a block with several
        inputs can stop waiting for it); when the last one ends,
        ``flush`` is called instead.
        """

    def on_pause():
        """
        A consumer is full (the inputs are already paused): a source stops
        reading, so that backpressure reaches its socket.
        """

    def on_resume():
        """
        The consumers can take more again.
        """


class IChunkProducer(IBlock, IPushProducer):
    """
    A block that emits chunks of one kind to any number of consumers.

    Consumers attach with :meth:`subscribe`; the producer connects to its own
    inputs (or starts, for a source) when it gets its first consumer and
    disconnects (or stops) when the last one leaves.
    """

    kind = Attribute("Kind of every chunk this producer emits (str).")
    edges = Attribute("Tuple of the edges currently fed by this producer.")

    def subscribe(consumer, policy="block", maxsize=None):
        """
        Feed ``consumer`` (an :class:`IChunkConsumer`) from this producer.

        :param policy: ``"block"``, ``"drop_oldest"`` or ``"latest"``.
        :param maxsize: bound of the edge's queue, in chunks.
        :return: the new edge.
        """

    def unsubscribe(edge):
        """
        Stop feeding the consumer of ``edge``.  When the last edge leaves,
        the producer disconnects from its inputs, or stops if it is a source.
        """


class IOutput(IChunkProducer):
    """
    One named output of a block (``block.output("late")``): a producer of
    its own kind, with its own consumers and ``seq``.  A block's main
    output is also consumed through the block itself.
    """

    block = Attribute("The block this output belongs to.")
    output_name = Attribute('Its name within the block ("main", "late"...).')
    next_seq = Attribute("``seq`` of the next chunk it emits.")


class ISampleProducer(IChunkProducer):
    """
    Produces time samples: 1-D arrays, one element per sample, ``rate`` in
    samples per second.
    """


class IIQProducer(ISampleProducer):
    """
    Produces complex baseband samples (kind ``"iq"``), relative to full
    scale.  ``meta`` carries ``center_frequency`` (Hz) and
    ``reference_level`` (dBm of a full-scale tone).
    """


class IRealProducer(ISampleProducer):
    """
    Produces real-valued samples (kind ``"real"``), e.g. a voltage or a
    current; ``meta['units']`` names their unit.
    """


class ISpectrumProducer(IChunkProducer):
    """
    Produces spectra (kind ``"spectrum"``): 2-D arrays, one row per frame and
    one column per frequency bin; ``rate`` in frames per second.  ``meta``
    carries ``start_frequency`` and ``bin_width`` (Hz; bin ``k`` is at
    ``start_frequency + k * bin_width``) and ``units`` (``"power"`` for
    linear power relative to full scale, ``"dBm"`` once calibrated).
    """


class IScalarProducer(IChunkProducer):
    """
    Produces scalar values (kind ``"scalar"``): 1-D arrays, one value per
    measurement interval; ``meta['units']`` names the unit.
    """


class IPeaksProducer(IChunkProducer):
    """
    Produces peak tables (kind ``"peaks"``): 2-D arrays of shape
    ``(n, 2)``, each row a peak's frequency (Hz) and level (``meta['units']``),
    strongest first.
    """


class IRecordsProducer(IChunkProducer):
    """
    Produces records (kind ``"records"``): irregular, time-stamped values such
    as a sensor reading every few seconds, a KPI or an event.

    A consumer may rely on this of every chunk: ``times`` is a read-only
    int64 array holding the device time (ns) of each row, sorted
    non-decreasing within the chunk and across the stream (each chunk's rows
    are at or after the previous chunk's ``end``); every row lies in the
    chunk's half-open range, ``start <= times[0]`` and ``times[-1] < end``;
    ``end`` is how far device time has certainly advanced (a watermark), so
    it may lie far beyond the last row, and a chunk without rows just
    advances time; ``rate`` is ``0.0``.  ``data`` has one row per time:
    numbers (1-D or ``(n, k)``), a structured array of numeric fields, or an
    object array of ``str`` and ``bytes``; ``meta['units']`` may name the
    unit of numbers.
    """


class IChunkConsumer(IConsumer):
    """
    Receives the chunks of one edge.

    The edge registers itself with ``registerProducer(edge, True)``; the
    consumer may call ``edge.pauseProducing()`` when it cannot take more and
    ``edge.resumeProducing()`` when it can again.
    """

    def write(chunk):
        """
        Take one chunk.  Chunks arrive in order, with gap-free ``seq``.
        """

    def end_of_stream():
        """
        The producer has finished: no more chunks will come on this edge.
        """


class ISink(IBlock):
    """
    A block without outputs.  Constructing a sink connects it to its inputs,
    which brings the chain to life back to the source; :meth:`close` removes
    it again.
    """

    finished = Attribute("True once every input has reached end-of-stream.")

    def close():
        """
        Disconnect from the inputs; a source left without consumers stops.
        """


class IStateful(Interface):
    """
    A block whose output depends on what it has seen (an average, a hold).
    """

    def get_state():
        """
        Return the block's state as msgpack-encodable data.
        """

    def set_state(state):
        """
        Restore a state returned earlier by :meth:`get_state`.  On a
        :class:`~pyrf_blocks.block.Block` not yet connected, the state is
        kept and applied when it connects, right after the ``reset`` that
        connecting does (so a snapshot can be put back into a block before
        its consumers are made).
        """


class ICoordinator(Interface):
    """
    The small key-value store with leases, transactions and watches that a
    cluster coordinates on: etcd's model, offered by etcd itself
    (:class:`~pyrf_blocks.cluster.etcd.EtcdCoordinator`) and by an
    in-process implementation for one machine
    (:class:`~pyrf_blocks.cluster.memory.InProcessCoordinator`).

    Membership, assignment, leader election and fencing are written once,
    over this interface (``pyrf_blocks.cluster``).  Keys are text, values
    bytes; every change gets the next integer *revision* of the whole store.
    Every method returns a Deferred.
    """

    def grant(ttl):
        """
        Fire with the id (int) of a new lease that expires ``ttl`` seconds
        from now unless kept alive; the keys put under it go with it.
        """

    def keepalive(lease):
        """
        Renew ``lease`` for its full ttl; fire with the seconds it now has
        left, 0 when it had already expired (its keys are gone).
        """

    def revoke(lease):
        """
        End ``lease`` now, deleting its keys.
        """

    def range(prefix):
        """
        Fire with ``(kvs, revision)``: the :class:`~pyrf_blocks.cluster.kv.KeyValue`
        of every key starting with ``prefix``, in key order, and the store's
        revision when they were read.
        """

    def put(key, value, lease=0):
        """
        Set ``key``; fire with the new revision.
        """

    def delete(key):
        """
        Delete ``key`` (nothing if absent); fire with the store's revision.
        """

    def txn(compare, success, failure=()):
        """
        Atomically: if every :class:`~pyrf_blocks.cluster.kv.Compare` holds,
        apply the ``success`` operations, else the ``failure`` ones; fire with
        ``(succeeded, revision)``.
        """

    def watch(prefix, callback, start_revision=0):
        """
        Call ``callback(events)`` with each batch of
        :class:`~pyrf_blocks.cluster.kv.Event` on keys starting with
        ``prefix``, in revision order, from ``start_revision`` (0: from now).
        Fire with an object whose ``cancel()`` stops the watch, and whose
        ``ended`` is a Deferred that fires with the reason (text) if the
        store ends the watch itself (etcd restarted, the connection lost, the
        start revision compacted): no event comes after that, and a watcher
        must read again and watch anew
        (:class:`~pyrf_blocks.cluster.follow.Follower` does).  It never
        fires after ``cancel()``.
        """

    def close():
        """
        Stop every watch and release connections; fire when done.
        """


class IEdge(IPushProducer):
    """
    A bounded queue from a producer to one consumer, with a policy.
    """

    producer = Attribute("The producing block.")
    consumer = Attribute("The IChunkConsumer fed by this edge.")
    policy = Attribute('"block", "drop_oldest" or "latest".')
    maxsize = Attribute("Bound of the queue, in chunks.")
    stats = Attribute(
        "Mapping of counters: chunks_in, chunks_out, bytes_out, dropped, depth, "
        "max_depth."
    )


class IBlobStore(Interface):
    """
    Bytes of images, files and videos, kept beside a store's rows under a
    name (their SHA-256, :func:`pyrf_blocks.storage.rows.blob_name`).
    """

    def put(name, data):
        """
        Keep ``data`` under ``name``, durably, before returning.  Putting a
        name again is harmless.
        """

    def get(name):
        """
        The bytes kept under ``name``; ``KeyError`` if there are none.
        """

    def names():
        """
        Every name kept, as a set.
        """

    def remove(names, older_than=None):
        """
        Forget ``names``; with ``older_than`` (seconds since the epoch),
        only those put before it (a blob whose row is still being written
        is younger).  Returns how many were removed.
        """


class IStore(Interface):
    """
    Where sensor pipelines keep their enriched data: a table per policy
    (``last_value``, ``n_records``, ``time_window``, ``aggregation``,
    ``video``) and the bad payloads, keyed by (topic, time or window start).

    Calls block: run them on a thread (:class:`pyrf_blocks.storage.ThreadedStore`),
    never on the reactor thread.
    """

    def write(batch):
        """
        Write a :class:`~pyrf_blocks.storage.rows.Batch` in one transaction,
        durably, before returning.  Writing the same rows again leaves the
        same rows (upserts); a ``last_value`` row is replaced only by a
        reading at least as recent.  Raises
        :class:`~pyrf_blocks.errors.StoreUnavailable` when the database
        cannot be reached; then nothing of the batch was written.
        """

    def query(topic, policy, start=None, end=None, limit=None):
        """
        Rows of ``topic`` in table ``policy`` whose time (window start) lies
        in ``[start, end)`` (ns; None: unbounded), oldest first, as dicts
        with the table's columns (:data:`~pyrf_blocks.storage.rows.COLUMNS`);
        with ``limit``, only the most recent ``limit`` of them.
        """

    def topics(policy=None):
        """
        The topics with rows (in table ``policy``), sorted.
        """

    def bad_counts(topic=None):
        """
        ``{(topic, reason): count}`` of the bad payloads kept.
        """

    def cursor(key):
        """
        The value a batch stored under ``key`` in ``cursors``, or None.
        """

    def cursors(prefix):
        """
        ``{key: value}`` of every cursor whose key starts with ``prefix``.
        """

    def blob(name):
        """
        The bytes of an image, file or video row (its ``blob`` column).
        """

    def cleanup(now, keep=None, grace=600.0):
        """
        Remove rows past retention: ``time_window`` rows and ``last_value``
        files whose ``expires`` (ns) is before ``now`` (ns), and in
        ``n_records`` all but the last ``keep[topic]`` rows of each topic
        named; then the blobs no row references, if put more than ``grace``
        seconds ago.  Returns ``{what: count removed}``.
        """

    def close():
        """
        Release the connection.
        """


#: Producer interface for each chunk kind.
KIND_INTERFACES = {
    "iq": IIQProducer,
    "real": IRealProducer,
    "spectrum": ISpectrumProducer,
    "scalar": IScalarProducer,
    "peaks": IPeaksProducer,
    "records": IRecordsProducer,
}


class IDurableSink(ISink):
    """
    A sink whose effect outlives the process (a store): it says how far
    its input is durable, so a source upstream acknowledges only that (see
    :mod:`pyrf_blocks.durable`).
    """

    durable_through = Attribute(
        "Device time (ns) before which every row of the input has its effect "
        "committed, or None before the first commit.  It only grows."
    )

    def stored_through():
        """
        A Deferred firing with the ``durable_through`` an earlier run last
        committed (stored with its rows), or None.
        """

    def stored_cursors(prefix):
        """
        A Deferred firing with ``{key: text}`` of the cursors this sink's
        store holds under keys starting with ``prefix`` (what sources asked
        it to store with its rows, in earlier runs).
        """


class IAcknowledgingSource(IBlock):
    """
    A source whose messages wait for an acknowledgement (an MQTT
    subscription with QoS 1) that it gives only once their effect is
    durable downstream (see :mod:`pyrf_blocks.durable`).
    """

    def durable_marks(sink, taken):
        """
        ``{key: text}`` for the durable ``sink`` to store in the same
        transaction as its rows, which hold input rows from before device
        time ``taken`` at most: what the source needs after a restart to
        recognise messages delivered again.
        """

    def durable_advanced():
        """
        A durable sink downstream has committed more: acknowledge what is
        now durable everywhere.
        """
