"""
What a store keeps: readings, aggregates, bad payloads, and the batch that
writes them in one transaction.

A *reading* is one value of a topic at one time (integer nanoseconds since
the Unix epoch): a number, a text, or the bytes of an image or a file.  A
reading is written under one *policy* table (``last_value``, ``n_records``,
``time_window``); aggregates and videos have tables of their own.  Every
row is keyed by (topic, time) or (topic, window start), so writing the same
batch twice leaves the same rows: a replay after a crash never duplicates.
"""

import hashlib
from dataclasses import dataclass, field

__all__ = ["KINDS", "POLICIES", "Reading", "Aggregate", "Video", "Frame", "BadPayload",
           "Batch", "blob_name", "COLUMNS"]

#: Kinds of value a reading holds.
KINDS = ("number", "text", "image", "file")

#: Tables a query may name.
POLICIES = ("last_value", "n_records", "time_window", "aggregation", "video",
            "video_frames", "bad_payloads")

#: The columns of each table, as queries return them.
COLUMNS = {
    "last_value": ("topic", "time", "kind", "number", "text", "blob", "expires"),
    "n_records": ("topic", "time", "kind", "number", "text", "blob"),
    "time_window": ("topic", "time", "kind", "number", "text", "blob", "expires"),
    "aggregation": ("topic", "window_start", "window_end", "count", "min", "max", "sum", "avg",
                    "last_time"),
    "video": ("topic", "window_start", "window_end", "frames", "codec", "blob"),
    "video_frames": ("topic", "time", "window_start", "blob"),
    "bad_payloads": ("topic", "time", "reason", "detail"),
}


def blob_name(data):
    """
    The name bytes are kept under: their SHA-256, hexadecimal (equal bytes
    are kept once, and a replay writes the same name).
    """
    return hashlib.sha256(data).hexdigest()


@dataclass(slots=True, frozen=True)
class Reading:
    """
    One value of a topic: ``kind`` is one of :data:`KINDS`; ``value`` a
    float for numbers, ``str`` for text, ``bytes`` for images and files.
    ``expires`` (ns, or None) is when a cleanup may remove it.
    """

    topic: str
    time: int
    kind: str
    value: object
    expires: int | None = None

    def columns(self):
        """
        ``(number, text, blob)`` as a table holds them (bytes by name).
        """
        if self.kind == "number":
            return float(self.value), None, None
        if self.kind == "text":
            return None, self.value, None
        return None, None, blob_name(self.value)


@dataclass(slots=True, frozen=True)
class Aggregate:
    """
    min, max, sum and count of a topic's numbers over ``[start, end)`` (ns);
    ``last_time`` is the time of the last reading counted, so that a reading
    delivered again is not counted twice.
    """

    topic: str
    start: int
    end: int
    count: int
    min: float
    max: float
    sum: float
    last_time: int

    @property
    def avg(self):
        return self.sum / self.count if self.count else None


@dataclass(slots=True, frozen=True)
class Video:
    """
    A video made from a topic's images over ``[start, end)``.
    """

    topic: str
    start: int
    end: int
    frames: int
    codec: str
    data: bytes


@dataclass(slots=True, frozen=True)
class Frame:
    """
    An image waiting for the video of the window starting at
    ``window_start``: kept durably until the video is made (cleanup removes
    the frames of windows that have their video).
    """

    topic: str
    time: int
    window_start: int
    data: bytes


@dataclass(slots=True, frozen=True)
class BadPayload:
    """
    A payload a pipeline refused, and why (``reason`` is a short word such
    as ``type``, ``image``, ``size``; ``detail`` a sentence).
    """

    topic: str
    time: int
    reason: str
    detail: str = ""


@dataclass(slots=True)
class Batch:
    """
    Everything one transaction writes.  ``cursors`` maps a key to a text
    value stored in the same transaction (a source's position, such as an
    MQTT packet id and the time given to its message).
    """

    last_value: list = field(default_factory=list)
    n_records: list = field(default_factory=list)
    time_window: list = field(default_factory=list)
    aggregation: list = field(default_factory=list)
    video: list = field(default_factory=list)
    video_frames: list = field(default_factory=list)
    bad_payloads: list = field(default_factory=list)
    cursors: dict = field(default_factory=dict)

    def __len__(self):
        return (len(self.last_value) + len(self.n_records) + len(self.time_window) +
                len(self.aggregation) + len(self.video) + len(self.video_frames) +
                len(self.bad_payloads))

    def extend(self, other):
        """
        Add ``other``'s rows after this batch's own.
        """
        for name in POLICIES:
            getattr(self, name).extend(getattr(other, name))
        self.cursors.update(other.cursors)

    def blobs(self):
        """
        ``{name: bytes}`` of the images, files and videos in the batch.
        """
        found = {}
        for name in ("last_value", "n_records", "time_window"):
            for reading in getattr(self, name):
                if reading.kind in ("image", "file"):
                    found[blob_name(reading.value)] = reading.value
        for video in self.video:
            found[blob_name(video.data)] = video.data
        for frame in self.video_frames:
            found[blob_name(frame.data)] = frame.data
        return found
