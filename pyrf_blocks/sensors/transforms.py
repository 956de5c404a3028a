"""
What a pipeline changes in a value before keeping it: the
transformations stage.

Each transformation applies to values of one type and leaves the others
alone, so a pipeline file may list one of each, as the seed's example
does.  Numbers: a formula of ``value`` (and ``time``, Unix seconds) by the
safe evaluator (:mod:`pyrf_blocks.numerics.formula`, checked once, each
evaluation under a time limit), then scale by a coefficient, then round.
A formula whose result is not a finite number (``value / 0``), or that
runs past its time limit, rejects the payload (reason ``transform``).
Images (Pillow):
resize, set the pixel density, crop, convert the format, in that order.
Files: pack into a tar, a gzip-compressed tar (``tgz``, with the deflate
``level`` and window ``wbits``) or a zip archive.
"""

import io
import math
import tarfile
import time as _time
import zipfile
import zlib

from ..errors import FormulaError, FormulaTimeout, PayloadRejected
from ..numerics.formula import Formula

__all__ = ["NumericTransform", "ImageTransform", "FileTransform", "IMAGE_FORMATS",
           "COMPRESSIONS", "FORMULA_NAMES", "FORMULA_TIMEOUT"]

#: Image formats a transformation writes, by the name a pipeline file uses.
IMAGE_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}

#: Archive kinds a file transformation writes.
COMPRESSIONS = ("tgz", "tar", "zip")

#: The names a numeric transformation's formula may use: the reading's
#: ``value`` and its ``time`` in Unix seconds.
FORMULA_NAMES = ("value", "time")
#: Default time limit of one formula evaluation, seconds.
FORMULA_TIMEOUT = 0.05


class NumericTransform:
    """
    ``round(formula(value, time) * coefficient, decimal_point)``; each step
    optional.

    :param formula: a :class:`~pyrf_blocks.numerics.formula.Formula` of
        :data:`FORMULA_NAMES`, or its text (checked here: a mistake raises
        :class:`~pyrf_blocks.errors.FormulaError` with its column).
    :param timeout: seconds one evaluation may take, for a formula given
        as text.
    """

    kind = "number"

    def __init__(self, coefficient=None, decimal_point=None, formula=None,
                 timeout=FORMULA_TIMEOUT):
        if isinstance(formula, str):
            formula = Formula(formula, FORMULA_NAMES, timeout=timeout)
        self.formula = formula
        self.coefficient = coefficient
        self.decimal_point = decimal_point

    def __repr__(self):
        text = "" if self.formula is None else f" {self.formula.text!r}"
        return f"<NumericTransform{text} x{self.coefficient} round {self.decimal_point}>"

    def apply(self, value, topic, time):
        if self.formula is not None:
            value = self._evaluate(value, time)
        if self.coefficient is not None:
            value = value * self.coefficient
        if self.decimal_point is not None:
            value = round(value, self.decimal_point)
        return value

    def _evaluate(self, value, time):
        formula = self.formula
        try:
            result = formula.evaluate({"value": float(value), "time": time / 1e9})
        except (FormulaError, FormulaTimeout) as error:
            raise PayloadRejected("transform", str(error)) from None
        if result.dtype.kind == "c":
            raise PayloadRejected("transform", f"formula {formula.text!r} of value {value!r} "
                                  f"is complex: {result!r}")
        result = float(result)
        if not math.isfinite(result):
            raise PayloadRejected("transform", f"formula {formula.text!r} of value "
                                  f"{value!r} is {result}, not a finite number")
        return result


class ImageTransform:
    """
    Resize to ``size`` (width, height), set ``dpi``, crop to ``clip`` (x,
    y, width, height), and write as ``image_format`` (a key of
    :data:`IMAGE_FORMATS`; None keeps the input's format).
    """

    kind = "image"

    def __init__(self, size=None, dpi=None, clip=None, image_format=None):
        if image_format is not None and image_format not in IMAGE_FORMATS:
            raise ValueError(f"image transformation: format {image_format!r}; one of "
                             f"{', '.join(IMAGE_FORMATS)} (Pillow writes no SVG)")
        self.size = size
        self.dpi = dpi
        self.clip = clip
        self.image_format = image_format

    def __repr__(self):
        return f"<ImageTransform {self.size} {self.dpi} {self.clip} {self.image_format}>"

    def apply(self, value, topic, time):
        from PIL import Image

        try:
            with Image.open(io.BytesIO(value)) as image:
                image.load()
                target = IMAGE_FORMATS.get(self.image_format, image.format)
                if self.size is not None:
                    image = image.resize(self.size)
                if self.clip is not None:
                    x, y, width, height = self.clip
                    image = image.crop((x, y, x + width, y + height))
                if target == "JPEG" and image.mode not in ("RGB", "L"):
                    image = image.convert("RGB")
                out = io.BytesIO()
                options = {"dpi": (self.dpi, self.dpi)} if self.dpi is not None else {}
                image.save(out, format=target, **options)
        except Exception as error:  # Pillow raises many kinds (a decompression bomb...)
            raise PayloadRejected("transform", f"image transformation failed: {error}") from None
        return out.getvalue()


class FileTransform:
    """
    Pack a file's bytes as one member (named after its topic and time) of a
    ``compression`` archive: ``tar``; ``tgz`` (gzip of the tar, deflate
    ``level`` 0–9 and window ``wbits`` 9–15); ``zip`` (deflate ``level``).
    """

    kind = "file"

    def __init__(self, compression="tgz", level=6, wbits=15):
        if compression not in COMPRESSIONS:
            raise ValueError(f"file transformation: compression {compression!r}; one of "
                             f"{', '.join(COMPRESSIONS)}")
        if not 0 <= level <= 9:
            raise ValueError(f"file transformation: level {level}; 0 to 9")
        if not 9 <= wbits <= 15:
            raise ValueError(f"file transformation: wbits {wbits}; 9 to 15")
        self.compression = compression
        self.level = level
        self.wbits = wbits

    def __repr__(self):
        return f"<FileTransform {self.compression} level {self.level} wbits {self.wbits}>"

    def apply(self, value, topic, time):
        member = f"{topic.replace('/', '_')}-{time}"
        if self.compression == "zip":
            out = io.BytesIO()
            with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED,
                                 compresslevel=self.level) as archive:
                archive.writestr(zipfile.ZipInfo(member, _date_time(time)), value)
            return out.getvalue()
        out = io.BytesIO()
        with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as archive:
            info = tarfile.TarInfo(member)
            info.size = len(value)
            info.mtime = time // 10 ** 9
            archive.addfile(info, io.BytesIO(value))
        packed = out.getvalue()
        if self.compression == "tar":
            return packed
        # +16: a gzip header and trailer around the deflate stream.
        compressor = zlib.compressobj(self.level, zlib.DEFLATED, 16 + self.wbits)
        return compressor.compress(packed) + compressor.flush()


def _date_time(time):
    return _time.gmtime(max(time // 10 ** 9, 315532800))[:6]
