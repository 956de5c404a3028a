"""
Spectral processing blocks: FFT, calibration to dBm, decimation.
"""

import numpy as np
from zope.interface import implementer

from ..registry import register
from ..block import Block
from ..defaults import WINDOW
from ..interfaces import ISampleProducer, ISpectrumProducer, IStateful
from ..numerics.decimation import Decimator
from ..numerics.spectral import (MIN_FFT_SIZE, calibrated_extreme, calibrated_spectra,
                                 check_window,
                                 frame_extreme, frame_spectra, overlapping_frames,
                                 power_to_dbm, window, window_gains)
from ..params import Param, check_params
from ..state import check_version, pack_array, plain, unpack_array
from ..timebase import Timebase, continues, sample_time

__all__ = ["fft_block", "calibrate_block", "decimate_block", "MAX_FFT_SIZE"]

#: Longest FFT, samples: 16 Mi (a frame of 128 MiB of complex64).
MAX_FFT_SIZE = 1 << 24


class _Continuity:
    """
    Remembers where a stream should continue, to spot gaps and changes of
    settings (after which held-back samples must be discarded).
    """

    def __init__(self):
        self.expected = None
        self.meta = None
        self._restored_meta = None  # plain(meta) from a state, until the next chunk

    def breaks(self, chunk):
        if self._restored_meta is not None:
            changed = plain(chunk.meta) != self._restored_meta
            self._restored_meta = None
        else:
            changed = chunk.meta is not self.meta and chunk.meta != self.meta
        broken = self.expected is not None and (
            changed or not continues(self.expected, chunk.start, chunk.rate))
        self.expected, self.meta = chunk.end, chunk.meta
        return broken

    def get_state(self):
        return {"expected": self.expected,
                "meta": None if self.meta is None else plain(self.meta)}

    def set_state(self, state):
        self.expected, self.meta = state["expected"], None
        self._restored_meta = state["meta"]


def _pack_timebase(timebase):
    if timebase is None:
        return None
    return [timebase.origin_ns, timebase.rate, timebase.origin_index]


def _unpack_timebase(packed):
    return None if packed is None else Timebase(*packed)


@register
@implementer(ISpectrumProducer, IStateful)
class fft_block(Block):
    """
    Windowed FFT of IQ or real samples: a batch of power spectra per chunk.

    :param size: FFT length, samples.
    :param window: any ``scipy.signal.get_window`` name or tuple, a window
        with parameters written ``"kaiser:8.6"`` or ``("kaiser", 8.6)``; by
        default ``"flattop"`` (:data:`pyrf_blocks.defaults.WINDOW`), which
        reads a tone's level to 0.02 dB wherever it falls between bins.
    :param overlap: samples shared by consecutive frames, ``0 <= overlap < size``.

    Any length from 8 (``MIN_FFT_SIZE``) works; powers of two are fastest.
    IQ spectra are fftshifted (lowest frequency first, centred on the
    centre frequency); real input gives one-sided spectra from 0 Hz.  Each
    frame is stamped with the device time of its first sample.  Output is
    linear power (``units: "power"``); feed it to :class:`calibrate_block`
    for dBm.
    """

    type_name = "fft_block"
    kind = "spectrum"
    requires = (ISampleProducer,)
    param_rules = {"size": Param("count", minimum=MIN_FFT_SIZE, maximum=MAX_FFT_SIZE),
                   "window": Param(types=(str,), check=check_window),
                   "overlap": Param("count", minimum=0, below="size")}

    @property
    def window(self):
        """
        The window, as given (a name or a tuple).
        """
        return self.window_name

    #: The ufunc of the hold fused with this block by chain optimisation
    #: (:class:`~pyrf_blocks.optimise.HoldOfSpectra`), or None.
    fused_extreme = None
    #: The calibration that hold applies to its held row
    #: (:class:`~pyrf_blocks.optimise.HoldOfCalibration`), or None; the
    #: FFT's task then calibrates the row it sends, and the hold holds dBm.
    fused_calibration = None
    #: The calibrate_block fused into this block by chain optimisation
    #: (:class:`~pyrf_blocks.optimise.CalibrationOfSpectra`), or None: the
    #: FFT's task then calibrates its spectra in place and emits dBm.
    calibrating = None

    def __init__(self, producer, size=1024, window=WINDOW, overlap=0, **kwargs):
        self._set(size, window, overlap)
        super().__init__(producer, **kwargs)

    def fuse_hold(self, hold):
        """
        Emit, for each chunk, only what ``hold`` (this block's only
        consumer, a max or min hold) takes from it: the per-bin extreme of
        the chunk's spectra, as a one-row chunk stamped with the time of the
        chunk's last frame.  The FFT's task then computes that row too, and
        the batch of spectra stays where it was computed.  Called by chain
        optimisation before the graph runs.
        """
        if hold.inputs != (self,):
            raise ValueError(f"{self.label}: cannot fuse {hold.label}, which does not read it")
        self.fused_extreme = type(hold)._combine
        # A hold that calibrates its held row (fused with its calibration
        # first) gets the row calibrated here instead, in the same task:
        # the logarithm leaves the reactor's thread when the FFT runs on a
        # pool.
        self.fused_calibration = hold.calibration
        hold.rows_calibrated = hold.calibration is not None

    def fuse_calibration(self, calibration):
        """
        Emit the spectra ``calibration`` (this block's only consumer, a
        :class:`calibrate_block`) would emit: calibrated to dBm in the same
        task, in place, in an array the calibration gives
        (:meth:`~pyrf_blocks.block.Block.buffer`), with its metadata; the
        calibration then passes them on.  Called by chain optimisation
        before the graph runs.
        """
        if calibration.inputs != (self,):
            raise ValueError(f"{self.label}: cannot fuse {calibration.label}, "
                             "which does not read it")
        self.calibrating = calibration
        calibration.fed_calibrated = True

    def _set(self, size, window, overlap):
        values = check_params(type(self), {"size": size, "window": window, "overlap": overlap},
                              strict=False, block=self.type_name)
        size, window, overlap = values["size"], values["window"], values["overlap"]
        self.size = size
        self.window_name = window
        self.overlap = overlap
        self.hop = size - overlap

    def configure(self, size=None, window=None, overlap=None):
        """
        Change the FFT length, window or overlap while running: the next
        chunk starts a fresh frame (samples held for an unfinished frame
        are discarded).  Bad values raise ``ValueError`` and change nothing.
        """
        self._set(self.size if size is None else size,
                  self.window_name if window is None else window,
                  self.overlap if overlap is None else overlap)
        self.reset()

    def reset(self):
        self._tail = None
        self._origin = None
        self._next_frame = 0
        self._next_time = None  # origin.time_of(_next_frame) once known
        self._continuity = _Continuity()
        self._out_meta = None

    # IStateful: the samples held for the next frame and where frames are counted from.

    def get_state(self):
        return {"version": 1, "tail": pack_array(self._tail),
                "origin": _pack_timebase(self._origin), "next_frame": self._next_frame,
                "continuity": self._continuity.get_state()}

    def set_state(self, state):
        check_version(self, state, 1)
        self._tail = unpack_array(state["tail"])
        self._origin = _unpack_timebase(state["origin"])
        self._next_frame = state["next_frame"]
        self._next_time = None
        self._continuity.set_state(state["continuity"])

    def _meta_for(self, chunk):
        return self._framing(chunk)[0]

    def _framing(self, chunk):
        # (output meta, window values, complex input, bins, shift after
        # the FFT) for chunks of ``chunk.meta``: made again only when the
        # meta object changes (reset forgets it), not per chunk.
        out = self._out_meta
        if out is not None and out[0] is chunk.meta:
            return out[1]
        complex_input = self.inputs[0].kind == "iq"
        size, rate = self.size, chunk.rate
        coherent_gain, enbw = window_gains(self.window_name, size)
        bin_width = rate / size
        meta = dict(chunk.meta)
        if complex_input:
            start_frequency = meta.get("center_frequency", 0.0) - (size // 2) * bin_width
        else:
            start_frequency = 0.0
        meta.update({
            "units": "power", "fft_size": size, "window": self.window_name,
            "window_sum": coherent_gain * size, "enbw_bins": enbw,
            "start_frequency": start_frequency, "bin_width": bin_width,
            "rbw": enbw * bin_width, "span": rate if complex_input else rate / 2,
            "overlap": self.overlap, "sample_rate": rate,
            "one_sided": not complex_input,
        })
        meta.setdefault("reference_level", 0.0)
        # An even-sized IQ window also performs the fftshift; an odd size
        # shifts after the FFT.
        values = window(self.window_name, size, shift=complex_input and size % 2 == 0)
        framing = (meta, values, complex_input, size if complex_input else size // 2 + 1,
                   complex_input and size % 2 == 1)
        self._out_meta = (chunk.meta, framing)
        return framing

    def compute(self, chunk):
        if self._continuity.breaks(chunk) or self._origin is None:
            # Times are counted in samples from the start of the stream (or
            # of the last gap), so they do not depend on the chunking.
            self._tail = None
            self._origin = Timebase(chunk.start, chunk.rate)
            self._next_frame = 0
            self._next_time = None
        tail = self._tail
        samples = chunk.data if tail is None else np.concatenate((tail, chunk.data))
        size, hop = self.size, self.hop
        length = len(samples)
        count = 0 if length < size else (length - size) // hop + 1
        used = count * hop
        if count:
            if hop == size:
                frames = samples[:used].reshape(count, size)
            else:
                frames = overlapping_frames(samples, size, hop, count)
            origin = self._origin
            first = self._next_frame
            # The last chunk's end is this one's start: computed once.
            start = self._next_time
            if start is None:
                start = origin.time_of(first)
            end = self._next_time = origin.time_of(first + used)
            rate = origin.rate / hop
            meta, values, iq, bins, shift = self._framing(chunk)
            combine = self.fused_extreme
            if combine is None:
                def emit(spectra):
                    if shift:
                        spectra = np.fft.fftshift(spectra, axes=-1)
                    self.emit(spectra, start, end, rate, meta)

                calibration = self.calibrating
                if calibration is None:
                    work = (frame_spectra, frames, values, iq, self.buffer((count, bins)))
                else:
                    # What the fused calibration would emit (it passes it on),
                    # in an array of its own (from its pool, or lent by a
                    # shared-memory stream reading it).
                    calibrated, level, one_sided = calibration.terms(meta)
                    work = (calibrated_spectra, frames, values, iq,
                            calibration.buffer((count, bins)), meta["window_sum"], level,
                            one_sided)
                    meta = calibrated
            else:
                # What the fused hold reads of the unfused chunk: the
                # extreme of its rows, at the time of its last row (as
                # Chunk.time_of gives it).
                last = sample_time(int(start), count - 1, float(rate))

                def emit(extreme):
                    if shift:
                        extreme = np.fft.fftshift(extreme, axes=-1)
                    self.emit(extreme, last, end, rate, meta)

                calibration = self.fused_calibration
                if calibration is None:
                    work = (frame_extreme, frames, values, iq, combine, self.buffer((1, bins)))
                else:
                    _, level, one_sided = calibration.terms(meta)
                    work = (calibrated_extreme, frames, values, iq, combine,
                            self.buffer((1, bins)), meta["window_sum"], level, one_sided)
            # The FFT may run on a compute pool (pyrf_blocks.parallel); the
            # stream's bookkeeping stays here, in order.
            self.run_parallel(*work, then=emit)
            self._next_frame += used
        # Keep the tail as a copy so the (possibly large) input can be freed.
        self._tail = samples[used:].copy() if used < length else None


@register
@implementer(ISpectrumProducer)
class calibrate_block(Block):
    """
    Linear FFT power to dBm, from the reference level and the window's
    coherent gain: an on-bin tone of amplitude A reads
    ``reference_level + 20·log10(A)`` dBm.

    :param reference_level: dBm of a full-scale tone; by default the
        source's (``meta['reference_level']``).
    :param offset: dB added to every bin (cable loss, external gain).
    """

    type_name = "calibrate_block"
    kind = "spectrum"
    requires = (ISpectrumProducer,)
    param_rules = {"reference_level": Param("dBm"), "offset": Param("dB")}

    def __init__(self, producer, reference_level=None, offset=0.0, **kwargs):
        self.reference_level = reference_level
        self.offset = float(offset)
        super().__init__(producer, **kwargs)

    def reset(self):
        self._out_meta = None

    def calibrated(self, power, meta, out=None):
        """
        ``(dBm, meta)``: linear ``power`` with metadata ``meta`` (an input
        chunk's) calibrated as this block does, into ``out`` if given (else
        a new array).  (A hold fused with this block by chain optimisation
        calls it on its held row.)
        """
        out_meta, level, one_sided = self._calibration(meta)
        return power_to_dbm(power, meta["window_sum"], level, one_sided, out=out), out_meta

    def terms(self, meta):
        """
        ``(output meta, level, one-sided FFT size or None)``: what this block
        calibrates input chunks of metadata ``meta`` with (the last two are
        :func:`~pyrf_blocks.numerics.spectral.power_to_dbm`'s
        ``reference_level`` and ``real_fft_size``).
        """
        return self._calibration(meta)

    def _calibration(self, meta):
        # (output meta, level, one-sided FFT size) for input chunks of ``meta``.
        if meta.get("units") != "power":
            raise ValueError(f"{self.type_name} {self.name!r} needs linear power "
                             f"spectra (units 'power'), got units {meta.get('units')!r}")
        if self._out_meta is None or self._out_meta[0] is not meta:
            reference = (meta.get("reference_level", 0.0) if self.reference_level is None
                         else self.reference_level)
            calibrated_meta = dict(meta, units="dBm", reference_level=reference,
                                   calibration_offset=self.offset)
            self._out_meta = (meta, calibrated_meta, reference + self.offset,
                              meta["fft_size"] if meta.get("one_sided") else None)
        return self._out_meta[1:]

    #: True when the fft_block feeding this block calibrates its spectra
    #: (:class:`~pyrf_blocks.optimise.CalibrationOfSpectra`): its chunks are
    #: already what this block emits, and are passed on.
    fed_calibrated = False

    def compute(self, chunk):
        if self.fed_calibrated:
            self.forward(chunk)
            return
        data, meta = chunk.data, chunk.meta
        out_meta, level, one_sided = self._calibration(meta)
        start, end, rate = chunk.start, chunk.end, chunk.rate
        self.run_parallel(power_to_dbm, data, meta["window_sum"], level, one_sided,
                          self.buffer(data.shape),
                          then=lambda dbm: self.emit(dbm, start, end, rate, out_meta))


@register
@implementer(IStateful)
class decimate_block(Block):
    """
    Low-pass filter and keep every ``factor``-th sample (FIR from
    ``scipy.signal.firwin``).  The output rate is ``rate / factor`` and each
    output sample carries the device time of the input sample it stands
    for; the span in ``meta`` shrinks accordingly.

    :param factor: keep one sample in ``factor``.
    """

    type_name = "decimate_block"
    requires = (ISampleProducer,)
    param_rules = {"factor": Param("count", minimum=1, maximum=1 << 16)}

    def __init__(self, producer, factor=2, **kwargs):
        self.factor = factor
        super().__init__(producer, **kwargs)

    def output_kind(self):
        return self.inputs[0].kind

    def reset(self):
        self._decimator = None
        self._continuity = _Continuity()
        self._origin = None

    # IStateful: the filter's delay line, the samples fed and the time base.
    # The output meta is made again from the next chunk's (the same meta, or
    # the stream broke and it is made anew anyway).

    def get_state(self):
        decimator = self._decimator
        return {"version": 1, "continuity": self._continuity.get_state(),
                "origin": None if self._origin is None else _pack_timebase(self._origin[0]),
                "decimator": None if decimator is None else {
                    "dtype": decimator.dtype.str, "fed": decimator.fed,
                    "delay_line": pack_array(decimator.delay_line)}}

    def set_state(self, state):
        check_version(self, state, 1)
        self._continuity.set_state(state["continuity"])
        self._origin = None if state["origin"] is None else (
            _unpack_timebase(state["origin"]), None)
        saved = state["decimator"]
        self._decimator = None
        if saved is not None:
            self._decimator = Decimator(self.factor, np.dtype(saved["dtype"]))
            self._decimator.restore(saved["fed"], unpack_array(saved["delay_line"]))

    def _meta(self, chunk):
        return dict(chunk.meta, sample_rate=chunk.rate / self.factor,
                    decimation=chunk.meta.get("decimation", 1) * self.factor)

    def _emit(self, first, outputs):
        if not len(outputs):
            return
        origin, meta = self._origin
        factor = self.factor
        self.emit(outputs, origin.time_of(first * factor),
                  origin.time_of((first + len(outputs)) * factor), origin.rate / factor, meta)

    def compute(self, chunk):
        if self._continuity.breaks(chunk) or self._decimator is None:
            if self._decimator is not None:
                self._emit(*self._decimator.flush())
            self._decimator = Decimator(self.factor, chunk.data.dtype)
            self._origin = (Timebase(chunk.start, chunk.rate), self._meta(chunk))
        elif self._origin[1] is None:  # restored from a state
            self._origin = (self._origin[0], self._meta(chunk))
        self._emit(*self._decimator.feed(chunk.data))

    def flush(self):
        if self._decimator is not None:
            self._emit(*self._decimator.flush())
