"""
The defaults that blocks and commands share, each defined once here so that
``pyrf-blocks demo``, ``view``, ``record`` and the blocks they build read the
same spectrum the same way.  (docs/concepts/defaults.rst says why each.)
"""

__all__ = ["WINDOW", "NOISE_FLOOR", "MODEL", "SAMPLE_FORMAT", "SIMULATED_TONES"]

#: FFT window of ``fft_block`` and of the commands.  Flat-top is the bench
#: convention for reading levels: its top is flat to 0.02 dB across a bin,
#: so a tone between two bins reads its true level (with Hann it reads up to
#: 1.42 dB low, the scalloping loss: the viewer's -45 dBm tone read -45.87).  The
#: price is a wider RBW (3.77 bins ENBW, Hann 1.5): choose ``hann`` or
#: ``blackmanharris`` to resolve tones close together.
WINDOW = "flattop"

#: Noise density of the simulated instrument and of the emulator, dBm/Hz.
#: At the default span and FFT (7.8125 MHz, 1024 bins, flat-top: RBW
#: 28.76 kHz) it reads -85 dBm, on screen in the viewer's default scale
#: (0 dBm reference, 10 dB/div: -100 dBm at the bottom) and 65 dB below the
#: -20 dBm tone; at -150 dBm/Hz it would sit below the plot.
NOISE_FLOOR = -130.0

#: Analyzer family of ``pyrf-blocks view``, ``record`` and ``emulate``,
#: and of :class:`~pyrf_blocks.instruments.wsa.thinkrf_analyzer`: the
#: current WSA family.  ``--model`` or ``model=`` choose another.
MODEL = "WSA5000"

#: SigMF sample format of ``record_block`` and ``pyrf-blocks record`` for
#: IQ: 32-bit float, lossless for any input (an analyzer's 14-bit samples,
#: and decimated or filtered samples alike).  ``ci16_le`` halves the file
#: and is lossless for the analyzer's samples only.
SAMPLE_FORMAT = "cf32_le"

#: Tones of the simulated instrument in ``demo`` and ``view``:
#: ``(offset_hz, level_dbm)`` from the centre.
SIMULATED_TONES = ((1e6, -20.0), (-2.5e6, -45.0))
