"""
Choosing one of several implementations of the same numerics, once per
process: the FFT (:mod:`pyrf_blocks.numerics.fft`: FFTW or pocketfft) and
the spectrum chain's kernels (:mod:`pyrf_blocks.numerics.kernels`: numba or
numpy).

The rule is the same for each: the first one whose package imports,
unless an environment variable or ``set_backend`` names one; a name that
is not one of them is refused with the choices, and one whose package is
missing with what to install.  The last implementation needs nothing
beyond numpy and scipy, so there is always one.
"""

import importlib
import os

__all__ = ["BackendChoice", "importable"]


def importable(module):
    """
    Whether ``module`` imports: found is not enough, a package built for
    another numpy fails only when imported.
    """
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


class BackendChoice:
    """
    One process-wide choice among ``names`` (preferred first).

    :param what: how messages name the choice (``"kernels"``, ``"FFT backend"``).
    :param names: the implementations, preferred first.
    :param variable: the environment variable that may name one.
    :param needs: ``{name: (available, refusal)}`` for the implementations
        that need a package: ``available()`` says whether it imports (looked
        up at each call, so a test may replace it), ``refusal`` is the
        message of the ``ImportError`` when it is asked for but missing.
    """

    def __init__(self, what, names, variable, needs):
        self.what, self.names, self.variable, self.needs = what, tuple(names), variable, needs
        #: The implementation in use, None until the first :meth:`get`.
        self.chosen = None

    def __repr__(self):
        return f"<BackendChoice of {self.what}: {self.chosen or 'not chosen yet'}>"

    def get(self):
        """
        The implementation in use, chosen on the first call: the one the
        environment variable names, else the best available.
        """
        if self.chosen is None:
            self.set(os.environ.get(self.variable, "").strip().lower() or None)
        return self.chosen

    def set(self, name=None):
        """
        Use ``name``, or the best available when ``None``; return the one
        now in use.  ``ValueError`` for an unknown name, ``ImportError``
        for one whose package is missing.
        """
        if name is not None and name not in self.names:
            raise ValueError(f"unknown {self.what} {name!r}; use one of {', '.join(self.names)}")
        if name is not None and name in self.needs:
            available, refusal = self.needs[name]
            if not available():
                raise ImportError(refusal)
        if name is None:
            name = next(n for n in self.names if n not in self.needs or self.needs[n][0]())
        self.chosen = name
        return name
