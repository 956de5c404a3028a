"""
Which payloads a pipeline keeps: the filters stage.

In the seed's order: the size limit (bytes for images and files,
characters for numbers and text), the value type (``number``, ``text``,
``image``, ``file``), a whitelist or a blacklist of values, a minimum, a
maximum or a range, a maximum update rate (at most one value per N
seconds), and uniqueness (the payload's hash against the previous kept
payload of the topic).

A payload that is not what the pipeline takes (wrong type, undecodable
image, oversized) raises :class:`~pyrf_blocks.errors.PayloadRejected`: the
pipeline counts it as a bad payload.  A good value the filters leave out
is *dropped*: :meth:`Filters.check` names the reason, and the pipeline
counts it (and acknowledges it) without storing it.
"""

import hashlib
import io
import math

from ..errors import PayloadRejected

__all__ = ["Filters", "decode", "VALUE_TYPES", "NULLS"]

#: Value types of the seed (``binary`` is another name for ``file``).
VALUE_TYPES = ("number", "text", "image", "file")

#: Payloads that mean "no value": a blacklist may name them with null or "None".
NULLS = (b"", b"null", b"None", b"none", b"NULL")


def decode(kind, payload):
    """
    The value of ``payload`` (bytes) as a ``kind`` pipeline takes it: a
    float (or None for a null payload) for numbers, str for text, the bytes
    themselves for images (checked to decode) and files.

    :raises PayloadRejected: ``type``, ``encoding`` or ``image``.
    """
    if kind == "number":
        if payload.strip() in NULLS:
            return None
        try:
            return float(payload)
        except ValueError:
            raise PayloadRejected("type", f"not a number: {payload[:40]!r}") from None
    if kind == "text":
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError as error:
            raise PayloadRejected("encoding", f"not UTF-8 text: {error.reason} at byte "
                                  f"{error.start}") from None
    if kind == "image":
        from PIL import Image
        try:
            with Image.open(io.BytesIO(payload)) as image:
                image.verify()
        except Exception as error:  # Pillow raises many kinds (a decompression bomb...)
            raise PayloadRejected("image", f"not an image Pillow reads: {error}") from None
        return bytes(payload)
    return bytes(payload)


def _is_listed(value, listed):
    if value is None:
        return None in listed
    if isinstance(value, float):
        if math.isnan(value):
            return any(isinstance(v, float) and math.isnan(v) for v in listed)
        return value in listed
    return value in listed


def _listed_values(kind, values):
    """
    A list's entries as the values they match: numbers as floats, the
    words null/None/NaN/inf as what they name.
    """
    found = []
    for value in values:
        if value is None or (isinstance(value, str) and value in ("null", "None", "none")):
            found.append(None)
        elif kind == "number":
            found.append(float(value))
        else:
            found.append(value if isinstance(value, (str, bytes)) else str(value))
    return found


class Filters:
    """
    The filters of one pipeline; state (rate, uniqueness) is kept per topic.

    :param kind: value type, one of :data:`VALUE_TYPES`.
    :param whitelist: values kept (all others dropped), or None.
    :param blacklist: values dropped (may hold None, NaN, ±inf), or None.
    :param minimum: numbers below it are dropped.
    :param maximum: numbers above it are dropped.
    :param max_rate: seconds: at most one value per this interval and topic.
    :param unique: drop a payload equal to the previous kept one (by hash).
    :param max_size: largest payload, in characters for numbers and text,
        bytes for images and files; larger ones are bad payloads.
    """

    def __init__(self, kind="number", whitelist=None, blacklist=None, minimum=None,
                 maximum=None, max_rate=None, unique=False, max_size=None):
        if kind == "binary":
            kind = "file"
        if kind not in VALUE_TYPES:
            raise ValueError(f"filters: value type {kind!r}; one of {', '.join(VALUE_TYPES)}")
        self.kind = kind
        self.whitelist = None if whitelist is None else _listed_values(kind, whitelist)
        self.blacklist = None if blacklist is None else _listed_values(kind, blacklist)
        self.minimum = minimum
        self.maximum = maximum
        self.max_rate_ns = None if max_rate is None else int(max_rate * 1e9)
        self.unique = unique
        self.max_size = max_size
        self._last_kept = {}
        self._last_hash = {}

    def get_state(self):
        """What the rate and uniqueness filters remember, msgpack-encodable."""
        return {"last_kept": dict(self._last_kept), "last_hash": dict(self._last_hash)}

    def set_state(self, state):
        """Remember again what :meth:`get_state` returned."""
        self._last_kept = dict(state["last_kept"])
        self._last_hash = {topic: bytes(digest) for topic, digest in state["last_hash"].items()}

    def check(self, topic, time, payload):
        """
        ``(value, None)`` for a payload kept, ``(None, reason)`` for one
        dropped (``whitelist``, ``blacklist``, ``null``, ``min``, ``max``,
        ``rate``, ``unique``).

        :raises PayloadRejected: for a bad payload.
        """
        if self.max_size is not None:
            size = (len(payload) if self.kind in ("image", "file")
                    else len(payload.decode("utf-8", "replace")))
            if size > self.max_size:
                unit = "bytes" if self.kind in ("image", "file") else "characters"
                raise PayloadRejected("size", f"{size} {unit}, more than max_size "
                                      f"{self.max_size}")
        value = decode(self.kind, payload)
        if self.whitelist is not None and not _is_listed(value, self.whitelist):
            return None, "whitelist"
        if self.blacklist is not None and _is_listed(value, self.blacklist):
            return None, "blacklist"
        if value is None:
            raise PayloadRejected("type", "a null payload, and no blacklist drops null")
        if self.kind == "number":
            if self.minimum is not None and not value >= self.minimum:
                return None, "min"
            if self.maximum is not None and not value <= self.maximum:
                return None, "max"
        if self.max_rate_ns is not None:
            last = self._last_kept.get(topic)
            if last is not None and time - last < self.max_rate_ns:
                return None, "rate"
        if self.unique:
            digest = hashlib.blake2b(payload, digest_size=16).digest()
            if self._last_hash.get(topic) == digest:
                return None, "unique"
            self._last_hash[topic] = digest
        if self.max_rate_ns is not None:
            self._last_kept[topic] = time
        return value, None
