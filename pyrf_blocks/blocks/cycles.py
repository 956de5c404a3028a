"""
Per-cycle values of a mains signal: the RMS (or mean) of every cycle, as
records stamped with the cycle's start.

Cycle boundaries come from the nominal frequency on the device-time grid
(the default: every channel shares them) or from the signal's rising zero
crossings; :mod:`pyrf_blocks.numerics.cycles` says how each is found.
"""

import numpy as np
from twisted.logger import Logger
from zope.interface import implementer

from ..block import MAIN, Block
from ..interfaces import IRealProducer, IRecordsProducer, IStateful
from ..numerics.cycles import (boundaries_from, nominal_boundaries, rising_zero_crossings,
                               whole_cycle_sums)
from ..registry import register
from ..state import check_version, pack_array, unpack_array
from ..timebase import continues, rows_before

__all__ = ["cycle_rms"]

log = Logger()

BOUNDARIES = ("nominal", "zero_crossing")
STATISTICS = ("rms", "mean")


@register
@implementer(IRecordsProducer, IStateful)
class cycle_rms(Block):
    """
    The RMS of each cycle of a mains signal (``statistic="mean"``: its
    mean, e.g. the active power of a cycle from instantaneous power), as
    records: one row per complete cycle, at the cycle's start; a cycle ends
    where the next row begins, and a chunk's ``end`` is its last cycle's
    end.  The rows of one chunk are consecutive cycles.

    Only whole cycles are reported: the samples before the first boundary,
    after the last one, and those of a cycle interrupted by a gap in the
    input are left out, counted in :attr:`incomplete_samples` and logged
    at the end of the stream.

    :param frequency: nominal mains frequency, Hz (50 or 60...).
    :param boundaries: ``"nominal"``: cycles on the device-time grid of
        the nominal frequency, from device time 0, shared by every channel;
        ``"zero_crossing"``: a cycle starts at each rising zero crossing
        (noise within half a nominal period ignored).
    :param statistic: ``"rms"`` (units of the input) or ``"mean"``.
    """

    type_name = "cycle_rms"
    kind = "records"
    requires = (IRealProducer,)
    param_units = {"frequency": "Hz"}

    def __init__(self, producer, frequency=50.0, boundaries="nominal", statistic="rms",
                 **kwargs):
        label = f"{self.type_name} {kwargs.get('name')!r}"
        if not (isinstance(frequency, (int, float)) and 0 < frequency <= 1e6):
            raise ValueError(f"{label}: frequency must be a number of Hz in (0, 1e6], "
                             f"got {frequency!r}")
        if boundaries not in BOUNDARIES:
            raise ValueError(f"{label}: boundaries must be one of {', '.join(BOUNDARIES)}, "
                             f"got {boundaries!r}")
        if statistic not in STATISTICS:
            raise ValueError(f"{label}: statistic must be one of {', '.join(STATISTICS)}, "
                             f"got {statistic!r}")
        self.frequency = float(frequency)
        self.boundaries = boundaries
        self.statistic = statistic
        super().__init__(producer, **kwargs)

    def reset(self):
        #: Samples outside whole cycles, left out.
        self.incomplete_samples = 0
        self._start = None       # device time of the cycle in progress
        # Its samples so far are self._work[self._head:self._pos], in a
        # buffer that also takes the values of the chunks this block
        # computes itself (fused, or squared), right after them.
        self._work = None
        self._head = self._pos = 0
        self._expected = None    # where the next chunk must start
        self._next_k = None      # nominal: the next boundary not yet used
        self._next_time = None   # and its device time
        self._previous = None    # zero crossing: the last sample seen
        self._crossed = None     # zero crossing: time of the last boundary
        self._meta = None

    _STATE = ("incomplete_samples", "_start", "_expected", "_next_k",
              "_next_time", "_previous", "_crossed", "_meta")

    def get_state(self):
        state = {name: getattr(self, name) for name in self._STATE}
        state["version"] = 1
        if state["_previous"] is not None:
            state["_previous"] = float(state["_previous"])
        count = state["_count"] = self._pos - self._head
        state["pending"] = pack_array(self._work[self._head:self._pos] if count else None)
        return state

    def set_state(self, state):
        check_version(self, state, 1, unversioned=1)
        for name in self._STATE:
            setattr(self, name, state[name])
        self._work, self._head, self._pos = None, 0, 0
        pending = unpack_array(state.get("pending"))
        if pending is not None:
            self._keep(pending)

    #: The power block fused into this one by chain optimisation
    #: (:class:`~pyrf_blocks.optimise.CyclesOfPower`), or None.
    power = None

    def fuse_power(self, power):
        """
        Read what ``power`` (this block's input, a
        :class:`~pyrf_blocks.blocks.measure.power_block`) reads, and
        compute its product here: the same cycles from the same values,
        with no chunk of instantaneous power handed between blocks.  Called
        by chain optimisation before the graph runs.
        """
        if self.inputs != (power,):
            raise ValueError(f"{self.label}: cannot fuse {power.label}, which is not its "
                             "input")
        requires, self.requires = self.requires, (IRealProducer,) * len(power.inputs)
        try:
            self.replace_inputs(power.inputs)
        except (TypeError, ValueError):
            self.requires = requires
            raise
        self.power = power

    def compute(self, *chunks):
        chunk = chunks[0]
        n = len(chunk.data)
        if n == 0:
            return
        # Values computed here go into the work buffer, right after the
        # cycle in progress, when it has their dtype: a cycle straddling
        # chunks is then contiguous there, summed without a copy.
        slot = self._slot(n)
        if self.power is None:
            data, meta = chunk.data, chunk.meta
        else:  # fused: the power block's rows, computed as it would have
            data, meta = self.power.values(chunks, slot), self.power.meta
        owned = slot is not None and data is slot
        if self.statistic == "mean":
            values = data
        elif (slot is not None and data.dtype is slot.dtype
              and self.boundaries == "nominal"):  # (crossings read the samples after)
            values, owned = np.multiply(data, data, out=slot), True
        else:
            values, owned = data * data, False
        self._compute(chunk, data, values, meta, owned)

    def _compute(self, chunk, data, values, meta, owned):
        """
        The cycles of ``data``, the rows of a chunk timed as ``chunk`` (the
        chunk itself, or when fused the voltage's piece of the same range),
        with ``meta`` as its meta; ``values`` are what is summed (``data``,
        or its squares for the RMS).  ``owned``: the values lie in the work
        buffer right after the cycle in progress (see :meth:`_slot`).
        """
        expected = self._expected
        if expected is not None and chunk.start != expected:
            if continues(expected, chunk.start, chunk.rate):
                # A rounding apart: the rows go on from where the last
                # chunk ended, timed as if the stream had not been cut.
                chunk = chunk.replace(start=expected)
            else:
                # A gap: the cycle in progress is not whole.
                self._drop()
                self._next_k = None
                self._previous = self._crossed = None
        self._expected = chunk.end
        if self._meta is None:
            self._meta = {"units": meta.get("units", ""), "quantity": self.statistic,
                          "frequency": self.frequency, "boundaries": self.boundaries}
        if self.boundaries == "nominal":
            indexes, times = self._nominal(chunk)
        else:
            indexes, times = self._crossings(chunk, data)
        # Each cycle is summed at once, over its own samples together (those
        # carried from earlier chunks joined to the rest), so its sum is the
        # same bits however the stream was cut.  A chunk holds a few
        # cycles: Python lists beat small numpy arrays.
        n = len(values)
        if not indexes:
            if self._start is None:
                self.incomplete_samples += n
            elif owned:
                self._pos += n
            else:
                self._keep(values)
            return
        first, last = indexes[0], indexes[-1]
        counts = [b - a for a, b in zip(indexes, indexes[1:])]
        end = times.pop()  # the start of the cycle now in progress
        if owned and self._start is not None:
            head, pos = self._head, self._pos
            length = pos + first - head  # the straddling cycle's
            if length and counts.count(length) == len(counts):
                # The common case, a steady rate: every cycle, the one
                # straddling chunks too, of one length and contiguous in
                # the work buffer, summed in one call (each row by itself:
                # the same bits as one by one) and divided in float64.
                sums = _add_reduce(self._work[head:pos + last].reshape(-1, length), 1)
                times.insert(0, self._start)
                self._start, self._head, self._pos = end, pos + last, pos + n
                self._emit(times, _divide(sums, length, dtype=np.float64), end)
                return
        sums = whole_cycle_sums(values, indexes, counts)
        if self._start is None:
            self.incomplete_samples += first
        else:
            if owned:
                straddling = self._work[self._head:self._pos + first]
            elif self._pos > self._head:
                self._keep(values[:first])
                straddling = self._work[self._head:self._pos]
            else:
                straddling = values[:first]
            times.insert(0, self._start)
            sums.insert(0, float(_add_reduce(straddling)))  # what .sum() calls
            counts.insert(0, len(straddling))
        self._start = end
        if owned:
            self._head, self._pos = self._pos + last, self._pos + n
        else:
            self._head = self._pos = 0
            self._keep(values[last:])
        if times:
            # float64 division, as numpy's; a cycle without samples (a rate
            # below the mains frequency) has no mean.
            self._emit(times, np.array([float(total) / count if count else _NAN
                                        for total, count in zip(sums, counts)]), end)

    #: Where the rows go instead of a chunk, when chain optimisation
    #: fused this block's one consumer with it
    #: (:class:`~pyrf_blocks.optimise.PointwiseOfCycles`):
    #: ``handoff(times, values, start, end, meta, seq)`` with the times a
    #: list; None otherwise.
    _handoff = None

    def hand_rows_to(self, handoff):
        """
        Give each chunk's rows to ``handoff`` (see :attr:`_handoff`) rather
        than emitting them: what its one consumer asks when fused with this
        block, before the graph runs.
        """
        self._handoff = handoff

    def _emit(self, times, means, end):
        """
        The cycles starting at ``times`` (a list), of these means (float64:
        of the squares for the RMS), the last ending at ``end``.
        """
        result = np.sqrt(means) if self.statistic == "rms" else means
        handoff = self._handoff
        if handoff is not None:
            # The chunk emit_records would make, as its parts, counted as
            # it would be.
            out = self.outputs[MAIN]
            seq = out.next_seq
            out.count(seq, len(times), end)
            handoff(times, result, times[0], end, self._meta, seq)
            return
        # Boundaries come in order.
        self.emit_records(np.array(times, np.int64), result, times[0], end, self._meta,
                          ordered=True)

    def _nominal(self, chunk):
        k = self._next_k
        if k is None:
            found = nominal_boundaries(chunk.start, chunk.end, self.frequency)
            if not found:
                return [], []
            k = found[0][0]
        times, self._next_k, self._next_time = boundaries_from(k, chunk.end, self.frequency)
        return rows_before(chunk.start, times, chunk.rate, len(chunk.data)), times

    def _crossings(self, chunk, data):
        candidates = rising_zero_crossings(data, self._previous)
        self._previous = data[-1]
        shortest = 0.5e9 / self.frequency
        indexes, times = [], []
        for index in candidates.tolist():
            time = chunk.time_of(index)
            if self._crossed is None or time - self._crossed >= shortest:
                indexes.append(index)
                times.append(time)
                self._crossed = time
        return indexes, times

    def _drop(self):
        if self._start is not None:
            self.incomplete_samples += self._pos - self._head
        self._start = None
        self._head = self._pos  # (a chunk's own values may follow there)

    #: The work buffer holds this many chunks' values after the cycle in
    #: progress, so that it is moved to the front once every few chunks.
    _WORK_CHUNKS = 4

    def _room(self, n, dtype):
        """
        Make room for ``n`` values of ``dtype`` after the cycle in progress
        in the work buffer: move the cycle to the front, or into a larger
        buffer (of a dtype that holds both) when it is too small.
        """
        work, head, pos = self._work, self._head, self._pos
        count = pos - head
        if work is not None and work.dtype == dtype and count + n <= len(work):
            if count:
                work[:count] = work[head:pos]
        else:
            if work is not None:
                dtype = np.result_type(work, dtype)
            grown = np.empty(max(int(self._WORK_CHUNKS * (count + n)) + count, 64), dtype)
            if count:
                grown[:count] = work[head:pos]
            self._work = grown
        self._head, self._pos = 0, count

    def _slot(self, n):
        """
        Where this block's own values for a chunk of ``n`` rows go: ``n``
        places of the work buffer right after the cycle in progress (of
        the buffer's dtype), or None before the buffer exists.
        """
        work = self._work
        if work is None:
            return None
        if self._pos + n > len(work):
            self._room(n, work.dtype)
            work = self._work
        return work[self._pos:self._pos + n]

    def _keep(self, values):
        """
        Append a copy of ``values`` to the samples of the cycle in progress.
        """
        n = len(values)
        if not n:
            return
        work = self._work
        if work is None or work.dtype != values.dtype or self._pos + n > len(work):
            self._room(n, values.dtype)
            work = self._work
        work[self._pos:self._pos + n] = values
        self._pos += n

    def flush(self):
        self._drop()
        if self.incomplete_samples:
            log.info("{block}: {samples} samples outside whole cycles were left out",
                     block=self.label, samples=self.incomplete_samples)


_NAN = float("nan")
_add_reduce = np.add.reduce
_divide = np.true_divide
