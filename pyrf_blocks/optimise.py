"""
Chain optimisation: rewriting a graph into one that computes the same
outputs with less work (strax's term).

The pass is explicit: :func:`optimise` finds every place where a rule of
:data:`RULES` applies, applies it and returns what it did as
:class:`Fusion` records; :func:`plan` only finds them (``pyrf-blocks run
--dry-run`` prints them and draws them in the dot output).  Each rule is a
small named object whose docstring is its proof that the outputs are
unchanged; a rule only touches blocks that run in this process and whose
intermediate results nobody else consumes.  Nothing is optimised unless
asked: ``Graph.run(optimise=True)``, ``optimise(graph)``, or ``pyrf-blocks
run`` (which optimises unless ``--no-optimise``).

Rules see a graph through :class:`Node` views, which a built graph and a
checked pipeline file both give, so a dry run shows exactly what the run
would fuse.
"""

from dataclasses import dataclass, replace

__all__ = ["Node", "Fusion", "Rule", "FeederRule", "HoldOfCalibration", "HoldOfSpectra", "CyclesOfPower",
           "CalibrationOfSpectra", "PointwiseOfCycles", "RULES", "graph_nodes", "pipeline_nodes", "plan", "optimise"]

#: Where a block runs when it runs in the graph's own process.
LOCAL = "local"


@dataclass(frozen=True)
class Node:
    """
    What a rule may look at of one block.

    :param name: the block's name.
    :param type_name: its registered type.
    :param inputs: references of its inputs (``name`` or ``name:output``).
    :param consumers: names of the running blocks that consume any of its
        outputs.
    :param policy: the policy of its input edges.
    :param place: ``"local"``, or the process it is placed in.
    """

    name: str
    type_name: str
    inputs: tuple
    consumers: tuple
    policy: str
    place: str


@dataclass(frozen=True)
class Fusion:
    """
    One application of a rule: ``rule`` (its name), the ``blocks`` it
    involves (names, upstream first) and a sentence saying what changed.
    """

    rule: str
    blocks: tuple
    summary: str

    def __str__(self):
        return f"{self.rule}: {self.summary}"


class Rule:
    """
    A rewrite whose result is provably the same: :meth:`match` finds it,
    :meth:`apply` makes it on a built graph.
    """

    name = "rule"

    def match(self, node, nodes):
        """
        A :class:`Fusion` if the rule applies with ``node`` (a
        :class:`Node`) as its last block, else ``None``; ``nodes`` are all
        the nodes by name.
        """
        raise NotImplementedError

    def apply(self, graph, fusion):
        """
        Make ``fusion`` on ``graph``, before it runs.
        """
        raise NotImplementedError

    def rewrite(self, nodes, fusion):
        """
        ``nodes`` as the graph is once ``fusion`` is made (what later rules
        see); by default unchanged.
        """
        return nodes


def sole_feeder(node, nodes, type_name):
    """
    The node of type ``type_name`` that is ``node``'s one input and has no
    other consumer, when both run here (what a fusion of the two needs);
    None otherwise.  A ``name:output`` reference names no node: None.
    """
    if len(node.inputs) != 1 or node.place != LOCAL:
        return None
    feeder = nodes.get(node.inputs[0])
    if (feeder is None or feeder.type_name != type_name
            or feeder.consumers != (node.name,) or feeder.place != LOCAL):
        return None
    return feeder


def absorbed(nodes, feeder, node):
    """
    ``nodes`` once the node named ``node`` reads the inputs of the one
    named ``feeder`` (its sole feeder) and ``feeder`` is idle: what a rule
    that absorbs a block into its consumer leaves.
    """
    feeder, node = nodes[feeder], nodes[node]
    nodes = {name: other for name, other in nodes.items() if name != feeder.name}
    nodes[node.name] = replace(node, inputs=feeder.inputs)
    for reference in set(feeder.inputs):
        upstream = nodes.get(reference)
        if upstream is not None:
            nodes[upstream.name] = replace(upstream, consumers=tuple(
                node.name if name == feeder.name else name for name in upstream.consumers))
    return nodes


class FeederRule(Rule):
    """
    A rule that fuses a node with its sole feeder
    (:func:`sole_feeder`): a node of a type in :attr:`consumers` whose
    one input is a node of type :attr:`feeder` read by nothing else, both
    running here, and whose edge between them is lossless.  Subclasses say
    how the edge is checked (:meth:`lossless`), what the plan prints
    (:meth:`describe`) and how the blocks are fused (:meth:`fuse`).
    """

    #: Type names of the node matched.
    consumers = ()
    #: Type name of its sole feeder.
    feeder = ""

    def match(self, node, nodes):
        if node.type_name not in self.consumers:
            return None
        feeder = sole_feeder(node, nodes, self.feeder)
        if feeder is None or not self.lossless(feeder, node):
            return None
        return Fusion(self.name, (feeder.name, node.name), self.describe(feeder, node))

    def lossless(self, feeder, node):
        """Whether the edge the fusion removes loses nothing (``block``)."""
        return node.policy == "block"

    def describe(self, feeder, node):
        """The plan's line for the fusion of ``feeder`` into ``node``."""
        raise NotImplementedError

    def apply(self, graph, fusion):
        feeder, node = (graph.blocks[name] for name in fusion.blocks)
        self.fuse(feeder, node)

    def fuse(self, feeder, node):
        """Fuse the blocks ``feeder`` and ``node`` of the graph."""
        raise NotImplementedError


class HoldOfCalibration(FeederRule):
    """
    ``max_hold(calibrate_block(x))`` becomes a hold of ``x``'s linear power
    that calibrates the held row: the logarithm runs once per chunk instead
    of once per frame (64 times less work on 64-frame chunks).  Likewise
    ``min_hold``.

    Proof.  Calibration maps each bin's power ``p`` to ``f(p) = 10·log10(p)
    + c`` (``c`` the bin's constant: reference level, window gain, offset,
    +6.02 dB on the inner bins of one-sided spectra).  With numpy's kernels
    ``f`` is float32 steps (``log10``, ``*= 10``, ``+= c``), each
    non-decreasing in its input; with numba's
    (:mod:`~pyrf_blocks.numerics.dbm_kernel`) it is computed in float64
    within 3e-16 dB of the exact level and rounded once to float32: the
    exact levels of adjacent float32 powers are at least 2.5e-7 dB apart,
    so the float64 levels increase with the power and their rounding never
    decreases (0 is -inf, +inf is +inf).  Either way ``f`` is
    non-decreasing, and for any ``a`` and ``b``, ``max(f(a), f(b)) =
    f(max(a, b))`` (if ``a >= b`` both sides are ``f(a)``), and the same for
    ``min``.  By induction over the rows of every chunk, the hold of the
    calibrated rows equals the calibration of the hold of the powers, bit
    for bit; NaN propagates through both sides alike.  The metadata is
    calibrate's, as before.  The rule applies only when the hold is the
    calibration's only consumer, both run here, and calibrate's own input
    edge is lossless (``block``), so no chunk could have been dropped
    between them.  A fused hold's ``get_state`` still gives dBm.
    """

    name = "hold_of_calibration"
    consumers = ("max_hold", "min_hold")
    feeder = "calibrate_block"

    def lossless(self, calibration, hold):
        # (the calibration's input edge is the one that stays, the hold's
        # goes: the calibration's must lose nothing)
        return calibration.policy == "block"

    def describe(self, calibration, hold):
        return (f"{hold.name} holds linear power and calibrates the held row "
                f"({calibration.name} no longer runs)")

    def fuse(self, calibration, hold):
        hold.fuse_calibration(calibration)

    def rewrite(self, nodes, fusion):
        # The hold now reads what the calibration read; the calibration is idle.
        return absorbed(nodes, *fusion.blocks)


class HoldOfSpectra(FeederRule):
    """
    ``max_hold(fft_block(x))`` (after :class:`HoldOfCalibration`, also
    ``max_hold(calibrate_block(fft_block(x)))``): the FFT emits, per chunk,
    only the per-bin maximum of its spectra, as a one-row chunk stamped
    with the time of the chunk's last frame, and computes it in the same
    task as the spectra (on a compute pool, in the same worker); the hold
    reads that row.  Likewise ``min_hold`` with the minimum.  A batch of
    spectra (64 rows of 1 024 bins for 64 Ki samples) is then never handed
    to another block, nor to the reactor's thread when the FFT runs on a
    pool.

    Proof.  For each chunk of ``n`` rows the hold computes ``e =
    combine.reduce(rows)`` (``rows[0]`` when ``n == 1``, the same values),
    combines ``e`` with its held row and emits the result stamped
    ``[chunk.time_of(n - 1), chunk.end)`` with the chunk's rate and
    metadata.  The fused FFT computes the same ``e`` with the same ufunc
    reduction over the same float32 rows (``numpy.maximum`` and
    ``numpy.minimum`` are exact, so the value does not depend on where it
    is computed, and NaN propagates alike), shifts it as it would have
    shifted the rows (a permutation of bins commutes with a per-bin
    reduction), and emits it as a one-row chunk starting at
    ``sample_time(start, n - 1, rate)``, which is what ``time_of(n - 1)``
    of the unfused chunk computes, and ending at its end, with the same rate
    and metadata.  The hold's ``time_of(0)`` of that chunk is its start, so
    the hold emits the same row, times, rate and metadata, and its state is
    the same after every chunk.  The rule applies only when the hold is the
    FFT's only consumer, both run here, and the hold's input edge is
    lossless (``block``), so it sees every chunk either way.

    When the hold calibrates its held row (after
    :class:`HoldOfCalibration`), the FFT's task also calibrates ``e`` with
    the hold's calibration and the hold holds dBm: it emits the running
    extreme of ``f(e)`` over the chunks instead of ``f`` of the running
    extreme of ``e``.  ``f`` is non-decreasing per bin (the proof of
    :class:`HoldOfCalibration`), so ``max(f(a), f(b)) = f(max(a, b))`` and
    by induction the two are equal bit for bit (``min`` alike); ``f`` is
    the same per-bin constant after the logarithm on every bin of a full
    FFT, so it commutes with the shift of odd sizes.  The logarithm then
    runs in the FFT's task, off the reactor's thread when the FFT has a
    compute pool, and the hold's state is its held row as it is.
    """

    name = "hold_of_spectra"
    consumers = ("max_hold", "min_hold")
    feeder = "fft_block"

    def describe(self, spectra, hold):
        return (f"{spectra.name} computes the extreme of each chunk's spectra "
                f"for {hold.name} and emits only that row")

    def fuse(self, spectra, hold):
        spectra.fuse_hold(hold)


class CyclesOfPower(FeederRule):
    """
    ``cycle_rms(power_block(v, i))`` becomes a ``cycle_rms`` that reads
    ``v`` and ``i`` itself and computes the power block's rows before its
    cycles: the same code on the same pieces, but no chunk of
    instantaneous power is made, handed over an edge and synchronised
    again (the power block no longer runs).  Any statistic and either kind
    of boundary.

    Proof.  The power block's synchroniser re-cuts ``v`` and ``i`` into
    groups of pieces covering common ranges; a group ends at the earliest
    end among the inputs' first buffered chunks, so the groups depend only
    on the chunks each input brings, in order, not on how the two streams
    interleave.  For each group it emits one chunk: ``values(group)``
    (:meth:`~pyrf_blocks.blocks.kpi.pointwise_block.values`, which checks
    the rates and evaluates ``voltage * current``) with the first piece's
    start, end and rate, and its own meta.  ``cycle_rms`` reads such a
    chunk only through its start, end, rate and row count (the device
    times of its rows and of the cycle boundaries come from those), its
    data and its meta's units.  Fused, ``cycle_rms`` has a synchroniser of
    its own over the same inputs, fed the same chunks in the same order
    (every edge involved is lossless), so it forms the same groups; for
    each it calls the same ``values(group)`` of the same power block and
    runs its own computation with the first piece's start, end, rate and
    row count and the power block's meta.  Every input of that
    computation is equal, so it emits the same rows, times, ranges, meta
    and seq, and holds the same state after every group, bit for bit.  An
    empty group gives no rows either way.  The rule applies only when the
    cycle block's one input is the power block, the power block's only
    consumer is the cycle block, both run here, and both blocks' input
    edges are lossless (``block``), so no chunk can be dropped in either
    form.  A rate mismatch the power block would refuse is refused with
    the same message, raised from the cycle block.
    """

    name = "cycles_of_power"
    consumers = ("cycle_rms",)
    feeder = "power_block"

    def lossless(self, power, cycles):
        return power.policy == "block" and cycles.policy == "block"

    def describe(self, power, cycles):
        return (f"{cycles.name} multiplies {' and '.join(power.inputs)} itself and "
                f"sums each cycle of the product ({power.name} no longer runs)")

    def fuse(self, power, cycles):
        cycles.fuse_power(power)

    def rewrite(self, nodes, fusion):
        return absorbed(nodes, *fusion.blocks)


class CalibrationOfSpectra(FeederRule):
    """
    ``calibrate_block(fft_block(x))``: the FFT calibrates its spectra to
    dBm in its own task, in the array it computed them in, and emits them
    with the calibration's metadata; the calibration passes its input on.
    The same kernels run in the same order, but a batch of spectra (256 KiB
    for 64 Ki samples) is written once instead of twice, and no second
    array is taken from a pool.  It applies after :class:`HoldOfCalibration`
    (a hold that absorbed its calibration leaves nothing to fuse here).

    Proof.  Unfused, the calibration computes ``power_to_dbm(p, window_sum,
    level, one_sided)`` of each chunk's spectra ``p`` into an array of its
    own, with ``(meta, level, one_sided)`` from its ``terms`` of the FFT
    chunk's metadata, and emits it with the FFT chunk's start, end and rate,
    one chunk per FFT chunk.  Fused, the FFT computes the same ``p`` (the
    same :func:`~pyrf_blocks.numerics.spectral.frame_spectra` into the same
    kind of array) and then the same ``power_to_dbm`` with the same
    arguments from the same ``terms`` of the same metadata, into ``p``
    itself (an array the calibration takes from its pool, as it would have):
    an element-wise ufunc gives the same bits whether its output is
    its input or another array.  For odd IQ sizes the shift after the FFT
    is a permutation of bins and the calibration of a full FFT adds the
    same constant to every bin, so they commute.  The FFT emits the result
    with the same times and rate and the calibration's output metadata, and
    the calibration forwards it: its consumers see the same data, times,
    rate, metadata and seq (both blocks number one chunk per FFT chunk).
    The FFT's spectra are never seen by anyone else: the rule applies only
    when the calibration is the FFT's only consumer, both run here, and the
    calibration's input edge is lossless (``block``).
    """

    name = "calibration_of_spectra"
    consumers = ("calibrate_block",)
    feeder = "fft_block"

    def describe(self, spectra, calibration):
        return (f"{spectra.name} calibrates its spectra for {calibration.name} in place "
                f"({calibration.name} passes them on)")

    def fuse(self, spectra, calibration):
        spectra.fuse_calibration(calibration)


class PointwiseOfCycles(Rule):
    """
    ``efficiency_block(cycle_rms(a), cycle_rms(b))`` (any pointwise block:
    ``formula_block``, ``power_block`` of records, with two or more inputs,
    each a ``cycle_rms``): each cycle block hands the rows of every chunk
    it would emit (a list of times, the values, start, end, meta and seq)
    straight to the pointwise block, which computes them as it computes
    the groups its synchroniser would form.  No records chunk is made,
    handed over an edge and synchronised for the common case, inputs cut
    alike; the cycle blocks still run, as before.

    Proof.  The pointwise block's synchroniser hands out its buffered
    chunks whole, as one group, whenever every input's first chunk covers
    the same range (its first rule), and its groups depend only on the
    chunks each input brings, in order, not on how the inputs interleave
    (:class:`CyclesOfPower`).  Fused, the block keeps what each feeder
    hands over in a queue per input while its synchroniser holds nothing;
    when every queue holds rows and their first entries have one start and
    end it takes them out together, exactly the group the synchroniser
    would form from the same chunks, and computes it as :meth:`compute
    <pyrf_blocks.blocks.kpi.pointwise_block.compute>` does: the same check
    that the rows are at the same times (the times as lists of the same
    ints), the same formula of the same value arrays in the same order,
    emitted with the first input's times (an int64 array of the same ints),
    start and end and its own meta, so the same chunk and seq.  When the
    first entries cover different ranges, or rows differ in time, the
    chunks are made as the feeders would have made them
    (``Chunk("records", values, start, end, 0.0, seq, meta, times)``, what
    ``emit_records(ordered=True)`` makes) and given to the synchroniser and
    :meth:`compute` as unfused, every queued one in order, and later rows
    go to the synchroniser too until it holds nothing again.  The feeders
    emit nothing else on that output (their rows go nowhere else: the
    pointwise block is their only consumer), number and count their output
    as before (:meth:`Output.count <pyrf_blocks.block.Output.count>`), and
    end their stream over the edge as before, after their last rows.  The
    queues are taken from by the synchroniser's own first rule
    (:func:`~pyrf_blocks.sync.take_aligned`).  An input running ahead is
    paused at the edge's bound and resumed at half of it by the mechanism
    that pauses a synchronised block's edges
    (:class:`~pyrf_blocks.sync.InputsAhead`), its depth counting what is
    queued here too; that decides only when rows arrive, not what is
    computed.  A failure in the computation fails the
    pointwise block, as the edge would.  The rule applies only when every
    input of the pointwise block is a distinct ``cycle_rms`` read by
    nothing else, all run here, and the pointwise block's input edges are
    lossless (``block``), so every chunk is computed in both forms.
    """

    name = "pointwise_of_cycles"
    consumers = ("efficiency_block", "formula_block", "power_block")
    feeder = "cycle_rms"

    def match(self, node, nodes):
        if (node.type_name not in self.consumers or node.place != LOCAL
                or node.policy != "block" or len(node.inputs) < 2
                or len(set(node.inputs)) != len(node.inputs)):
            return None
        feeders = [nodes.get(reference) for reference in node.inputs]
        for feeder in feeders:
            if (feeder is None or feeder.type_name != self.feeder
                    or feeder.consumers != (node.name,) or feeder.place != LOCAL):
                return None
        names = [feeder.name for feeder in feeders]
        return Fusion(self.name, (*names, node.name),
                      f"{node.name} takes the rows of {' and '.join(names)} directly, "
                      "without records chunks between them")

    def apply(self, graph, fusion):
        *feeders, node = (graph.blocks[name] for name in fusion.blocks)
        node.fuse_cycles(feeders)


#: The rules :func:`optimise` applies, in order.
RULES = (HoldOfCalibration(), HoldOfSpectra(), CyclesOfPower(), CalibrationOfSpectra(),
         PointwiseOfCycles())


def graph_nodes(graph):
    """
    ``{name: Node}`` of a built graph's blocks.
    """
    nodes = {}
    for block in graph.blocks.values():
        consumers = []
        for edge in block.edges:
            consumer = getattr(edge.consumer, "block", edge.consumer)
            consumers.append(getattr(consumer, "name", repr(consumer)))
        place = LOCAL if block.local_inputs and not hasattr(block, "place") else "placed"
        nodes[block.name] = Node(block.name, block.type_name,
                                 tuple(producer.name for producer in block.inputs),
                                 tuple(consumers), block.input_policy, place)
    return nodes


def pipeline_nodes(pipeline):
    """
    ``{name: Node}`` of a checked pipeline file's blocks (those that would
    run).
    """
    from .block import reference

    active = pipeline.active_blocks()
    consumers = {name: [] for name in pipeline.blocks}
    for block in pipeline.blocks.values():
        if block.name in active:
            for upstream in block.inputs:
                consumers[upstream].append(block.name)
    return {block.name: Node(block.name, block.type_name,
                             tuple(reference(name, output) for name, output
                                   in zip(block.inputs, block.input_outputs)),
                             tuple(consumers[block.name]), block.policy,
                             LOCAL if block.proc == LOCAL else block.proc)
            for block in pipeline.blocks.values() if block.name in active}


def plan(nodes, rules=RULES):
    """
    The fusions ``rules`` would make on ``nodes`` (from :func:`graph_nodes`
    or :func:`pipeline_nodes`), in order.  Each rule sees the graph as the
    fusions before it left it (:meth:`Rule.rewrite`), and a block takes part
    in one fusion of each rule at most.
    """
    fusions = []
    for rule in rules:
        taken = set()
        for name in list(nodes):
            node = nodes.get(name)
            fusion = None if node is None else rule.match(node, nodes)
            if fusion is not None and not taken.intersection(fusion.blocks):
                taken.update(fusion.blocks)
                fusions.append(fusion)
                nodes = rule.rewrite(nodes, fusion)
    return fusions


def optimise(graph, rules=RULES):
    """
    Apply every rule that fits to ``graph`` (built, not yet running) and
    return the :class:`Fusion` records of what changed, also added to
    ``graph.fusions``.  A fusion made before is not made or returned
    again, so optimising twice changes nothing the second time.
    """
    made = set(graph.fusions)
    fusions = [fusion for fusion in plan(graph_nodes(graph), rules) if fusion not in made]
    by_name = {rule.name: rule for rule in rules}
    for fusion in fusions:
        by_name[fusion.rule].apply(graph, fusion)
    graph.fusions += tuple(fusions)
    return fusions
