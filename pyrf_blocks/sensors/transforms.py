"""
What a pipeline changes in a value before keeping it: the
transformations stage.

Each transformation applies to values of one type and leaves the others
alone, so a pipeline file may list one of each, as the seed's example
does.  Numbers: scale by a coefficient, then round.  Images (Pillow):
resize, set the pixel density, crop, convert the format, in that order.
Files: pack into a tar, a gzip-compressed tar (``tgz``, with the deflate
``level`` and window ``wbits``) or a zip archive.

(A formula over numbers, with the safe evaluator, is not wired yet.)
"""

import io
import tarfile
import time as _time
import zipfile
import zlib

from ..errors import PayloadRejected

__all__ = ["NumericTransform", "ImageTransform", "FileTransform", "IMAGE_FORMATS",
           "COMPRESSIONS"]

#: Image formats a transformation writes, by the name a pipeline file uses.
IMAGE_FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}

#: Archive kinds a file transformation writes.
COMPRESSIONS = ("tgz", "tar", "zip")


class NumericTransform:
    """
    ``round(value * coefficient, decimal_point)``; either step optional.
    """

    kind = "number"

    def __init__(self, coefficient=None, decimal_point=None):
        self.coefficient = coefficient
        self.decimal_point = decimal_point

    def __repr__(self):
        return f"<NumericTransform x{self.coefficient} round {self.decimal_point}>"

    def apply(self, value, topic, time):
        if self.coefficient is not None:
            value = value * self.coefficient
        if self.decimal_point is not None:
            value = round(value, self.decimal_point)
        return value


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
