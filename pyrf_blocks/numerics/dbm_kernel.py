"""
The calibration's compiled kernel: float32 power to a level in dB plus an
offset, ``10·log10(p) + offset``, computed in float64 and rounded once to
float32, with a logarithm that LLVM vectorises.  Imported by
:mod:`pyrf_blocks.numerics.kernels` only where numba's kernels run (it
imports numba); :func:`pyrf_blocks.numerics.kernels.dbm_into` is its
interface.

The C library's ``log10f``, called once per element, took 6.6–7 ns per
element on the 2-core AMD EPYC (numpy's float32 ``log10`` is the same
function), and it was most of a heavy chain's time.  Here a float32 power
``p`` is ``m·2**k`` with ``m`` in [√½, √2), both taken from ``p``'s bits
(a subnormal ``p`` scaled by 2**25 first, exactly), and

    10·log10(p) = k·10·log10(2) + 10·log10(m),
    ln(m) = 2·atanh(s) = 2s + s·R(s²),  s = (m - 1)/(m + 1),

in float64, ``R`` being fdlibm's minimax polynomial (``e_log.c``,
``Lg1``–``Lg7``: within 2**-58.45 for ``|s| <= 0.1716``), its terms
times 10/ln(10).  ``10·log10(2)`` is split into a part of 44 significant
bits, whose product with ``k`` (at most 150 in size) is exact, and the
rest; ``k·hi + offset`` is then exact, so where the level cancels the
offset (a result near 0 dB) only the small terms' rounding is left.  The
float64 result is within about 3e-16 dB of the exact level plus its own
rounding, and rounded once to float32 it is within 1 float32 step of the
exact level rounded to float32 — except where the level is within 2e-9 dB
of 0 dB, whose float32 steps are finer than that: there it is within
5e-16 dB (for one offset, about one chance in a hundred that a power
falls there).
Checked against 80-bit ``log10`` for every positive finite float32 with
the offsets 0, -57.25 + 6.0206 and 100.5: all but 3 of the 6.4 billion
levels correctly rounded (those 3 at 0.5001 step), none decreasing; and
by the tests, for bit patterns and offsets drawn by hypothesis.

So the levels are more exact than numpy's float32 steps (``log10``,
``*= 10``, ``+= offset``, each rounded to float32, were up to thousands
of steps off where the level is near 0 dB), non-decreasing in the power
(adjacent float32 powers are at least 2.5e-7 dB apart, far more than the
error: what fusing a hold with its calibration relies on,
:class:`~pyrf_blocks.optimise.HoldOfCalibration`), and the same bits on
every machine: only IEEE float64 additions, multiplications and one
division, without fused multiply-adds (which would depend on the
processor), where ``log10f`` depends on the C library.  2.55 ns per
element on 64×1024 powers, where numpy's ``log10``, ``*=`` and ``+=``
took 6.8–6.9 ns (2.7×), and 4.1 ns on one row of 1024 with the call
(one core of the 2-core AMD EPYC, AVX2, no SVML, 2026-12-01:
``benchmarks/calibration.py``).

The functions are module-level so that numba's cache finds them again
in the next process: a compiled function defined inside another one, and
holding a compiled function or an intrinsic in its closure, gets a new
cache key in every process and is compiled again.
"""

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.extending import intrinsic

__all__ = ["dbm_rows", "level"]

#: float32 bits of √½ (0.70710677): ``bits - SQRT_HALF_BITS`` carries into
#: the exponent where the mantissa reaches it.
SQRT_HALF_BITS = 0x3F3504F3
#: 10·log10(2) = OCTAVE_HI + OCTAVE_LO; OCTAVE_HI has 44 significant bits.
OCTAVE_HI = float.fromhex("0x1.8151824c75800p+1")
OCTAVE_LO = float.fromhex("0x1.fabf59b5d80b8p-45")
#: 10/ln(10): decibels per neper of power.
DB_PER_NEPER = float.fromhex("0x1.15f2ced384f29p+2")
#: 10·log10(m) = s·(A0 + z·(A1 + ... + z·A7)), z = s²: 2 and fdlibm's
#: Lg1..Lg7, each times 10/ln(10).
A0, A1, A2, A3, A4, A5, A6, A7 = (DB_PER_NEPER * float.fromhex(lg) for lg in (
    "0x1p+1", "0x1.5555555555593p-1", "0x1.999999997fa04p-2", "0x1.2492494229359p-2",
    "0x1.c71c51d8e78afp-3", "0x1.7466496cb03dep-3", "0x1.39a09d078c69fp-3",
    "0x1.2f112df3e5244p-3"))

# error_model "numpy": a division by zero gives inf or NaN, as in numpy,
# rather than a test and an exception, which keep LLVM from vectorising.
_jit = numba.njit(nogil=True, cache=True, boundscheck=False, error_model="numpy")


@intrinsic
def bits_of(typingctx, value):
    """A float32's bits as an int32 (LLVM's bitcast, which vectorises)."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.IntType(32))
    return types.int32(types.float32), codegen


@intrinsic
def float_of(typingctx, bits):
    """The float32 whose bits are the int32 ``bits``."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


@_jit
def level(power, offset):
    """
    ``10·log10(power) + offset`` (float32 power, float64 offset) computed
    in float64 and rounded once to float32; ``-inf`` for ±0, NaN for a
    negative power or NaN, ``+inf`` for ``+inf``.  Without branches, so
    that a loop calling it is vectorised.
    """
    bits = bits_of(power)
    subnormal = bits < np.int32(0x00800000)
    scaled = power * np.float32(33554432.0) if subnormal else power  # × 2**25, exact
    scaled_bits = bits_of(scaled)
    octaves = np.int32(scaled_bits - np.int32(SQRT_HALF_BITS)) >> np.int32(23)
    mantissa = float_of(np.int32(scaled_bits - np.int32(octaves << np.int32(23))))
    m = np.float64(mantissa) - 1.0
    s = m / (2.0 + m)
    z = s * s
    decibels = s * (A0 + z * (A1 + z * (A2 + z * (A3 + z * (A4 + z * (A5 + z * (A6 + z * A7)))))))
    k = np.float64(octaves) - (25.0 if subnormal else 0.0)
    result = np.float32((k * OCTAVE_HI + offset) + (k * OCTAVE_LO + decibels))
    zero = bits & np.int32(0x7FFFFFFF) == 0
    result = (np.float32(-np.inf) if zero else np.float32(np.nan)) if bits <= 0 else result
    return power if bits >= np.int32(0x7F800000) else result


@_jit
def dbm_rows(power, out, offset, doubled, first, last):
    """
    :func:`level` of each element of the float32 rows ``power`` into
    ``out`` (which may be ``power``), with ``offset + doubled`` instead of
    ``offset`` over the columns ``first`` to ``last`` (exclusive).
    """
    rows, bins = power.shape
    plain = np.float64(offset)
    raised = plain + np.float64(doubled)  # (exact unless 2**29 apart in size)
    # Each row's levels go to a row of their own, then into ``out``: where
    # ``out`` is ``power`` (a calibration in place, as every fused one is)
    # LLVM's check that the two do not overlap fails and it runs the loop
    # unvectorised, 8.4 against 2.7 ns per element.
    levels = np.empty(bins, np.float32)
    for row in range(rows):
        # One loop, the offset chosen per column: it ran faster than a
        # loop per span of columns.
        for column in range(bins):
            levels[column] = level(power[row, column],
                                   raised if first <= column < last else plain)
        for column in range(bins):
            out[row, column] = levels[column]
