"""
Streaming decimation with a linear-phase FIR filter.
"""

import numpy as np

__all__ = ["Decimator", "design_decimation_filter"]


def design_decimation_filter(factor, taps_per_factor=16):
    """
    Low-pass FIR taps (odd length, linear phase) for decimating by
    ``factor``: cut-off at 80 % of the new Nyquist frequency, Kaiser window
    (scipy.signal.firwin).
    """
    numtaps = taps_per_factor * factor + 1
    import scipy.signal  # imported when first needed: it costs seconds
    return scipy.signal.firwin(numtaps, 0.8 / factor, window=("kaiser", 8.0))


class Decimator:
    """
    Filters and keeps every ``factor``-th sample of a stream fed in pieces.

    Output sample ``m`` is the filter centred on input sample ``m·factor``:
    the filter's delay of ``(taps-1)/2`` samples is taken out, so output
    timestamps are the input timestamps of the samples they stand for.
    Results do not depend on how the input is cut.
    """

    def __init__(self, factor, dtype):
        if not isinstance(factor, int) or factor < 1:
            raise ValueError(f"decimation factor must be a positive integer, got {factor!r}")
        self.factor = factor
        self.taps = design_decimation_filter(factor)
        self.delay = (len(self.taps) - 1) // 2
        self._state = np.zeros(len(self.taps) - 1, dtype=np.result_type(dtype, self.taps))
        self._fed = 0          # input samples fed so far
        self.dtype = np.dtype(dtype)

    def feed(self, samples):
        """
        Filter ``samples``; return ``(first_output_index, outputs)``.
        Output ``k`` stands for input sample ``(first_output_index + k)·factor``.
        """
        if self.factor == 1:
            first = self._fed
            self._fed += len(samples)
            return first, samples
        import scipy.signal
        filtered, self._state = scipy.signal.lfilter(
            self.taps, 1.0, samples, zi=self._state)
        # Filtered sample n stands for input sample n - delay; keep those
        # with n - delay = m·factor for m >= 0.
        begin = self._fed
        self._fed += len(samples)
        first_n = max(begin, self.delay)
        offset = (-(first_n - self.delay)) % self.factor
        first_n += offset
        outputs = filtered[first_n - begin::self.factor].astype(self.dtype)
        return (first_n - self.delay) // self.factor, outputs

    @property
    def fed(self):
        """Input samples fed so far."""
        return self._fed

    @property
    def delay_line(self):
        """The filter's state (``lfilter``'s ``zi``): a copy."""
        return self._state.copy()

    def restore(self, fed, delay_line):
        """
        Go on from :attr:`fed` and :attr:`delay_line` read from another
        decimator of the same factor (a block's saved state).
        """
        delay_line = np.asarray(delay_line, dtype=self._state.dtype)
        if delay_line.shape != self._state.shape:
            raise ValueError(f"a delay line of {delay_line.shape[0]} samples; this filter "
                             f"has {self._state.shape[0]}")
        self._fed, self._state = int(fed), delay_line.copy()

    def flush(self):
        """
        Push the filter's delay out with zeros at the end of the stream;
        return ``(first_output_index, outputs)`` for the last samples.
        """
        if self.factor == 1 or not self._fed:
            return self._fed, np.zeros(0, self.dtype)
        total = self._fed
        first, outputs = self.feed(np.zeros(self.delay, self.dtype))
        last_input = total - 1
        keep = max(0, last_input // self.factor - first + 1)
        return first, outputs[:keep]
