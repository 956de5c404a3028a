"""
The common FFT windows, sums of cosines, computed here as
``scipy.signal.get_window(name, size, fftbins=True)`` computes them: the
same float64 operations in the same order, so the same bits (checked
against scipy over many sizes by the tests).

Why not scipy's own: ``import scipy.signal`` cost 1.2–1.5 s of CPU per
process with scipy 1.17 (measured on the 2-core machine, 2026-12-01; most
of it rewriting the docstrings of about 800 functions at import), paid by
every process that made an FFT window: ``view``, ``demo``, each example
and child worker.  The windows other than these (``kaiser:8.6``,
``tukey``, a tuple, a name with scipy's ``_symmetric`` or ``_periodic``
suffix...) and every name scipy refuses still go to scipy, which keeps
its error messages.
"""

import numpy as np

__all__ = ["COSINE_WINDOWS", "periodic_window"]

#: The coefficients ``a`` of ``w = sum(a[k] * cos(k * x))``, with
#: ``x = linspace(-pi, pi, size + 1)[:-1]``, of each window computed here,
#: under every name ``scipy.signal.get_window`` takes for it (scipy's
#: ``_windows.py``: ``hann`` and ``hamming`` are its ``general_hamming``
#: with ``alpha`` 0.5 and 0.54, whose coefficients are
#: ``[alpha, 1.0 - alpha]``).  The boxcar is the sum of ``cos(0 * x)``:
#: exactly 1.0 everywhere, as scipy's ``ones``.
_COEFFICIENTS = {
    ("hann", "han"): (0.5, 1.0 - 0.5),
    ("hamming", "hamm", "ham"): (0.54, 1.0 - 0.54),
    ("blackman", "black", "blk"): (0.42, 0.5, 0.08),
    ("blackmanharris", "blackharr", "bkh"): (0.35875, 0.48829, 0.14128, 0.01168),
    ("nuttall", "nutl", "nut"): (0.3635819, 0.4891775, 0.1365995, 0.0106411),
    ("flattop", "flat", "flt"): (0.21557895, 0.41663158, 0.277263158, 0.083578947, 0.006947368),
    ("boxcar", "box", "ones", "rect", "rectangular"): (1.0,),
}

#: Each name computed here, with its coefficients.
COSINE_WINDOWS = {name: np.asarray(coefficients, np.float64)
                  for names, coefficients in _COEFFICIENTS.items() for name in names}


def periodic_window(name, size):
    """
    ``scipy.signal.get_window(name, size, fftbins=True)`` (float64, the
    same bits) where ``name`` is a string in :data:`COSINE_WINDOWS` and
    ``size`` a positive integer; ``None`` otherwise (then scipy computes
    it, or refuses it with its own message).
    """
    coefficients = COSINE_WINDOWS.get(name) if isinstance(name, str) else None
    if coefficients is None or not isinstance(size, int) or size < 1:
        return None
    if size == 1:
        return np.ones(1, np.float64)
    # scipy's _general_cosine_impl with sym=False: one point more, dropped
    # at the end (a periodic window is a symmetric one of size + 1, less
    # its last point); the sum from zeros, in the coefficients' order.
    x = np.linspace(-np.pi, np.pi, size + 1, dtype=np.float64)
    values = np.zeros(size + 1, np.float64)
    for k in range(coefficients.shape[0]):
        values += coefficients[k] * np.cos(k * x)
    return values[:-1]
