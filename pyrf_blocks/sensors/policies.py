"""
How a pipeline keeps what passed its filters: the accumulation policies.

* :class:`LastValue`: one row per topic, written no more often than every
  ``min_interval`` seconds; its file may expire after ``file_ttl``.
* :class:`NRecords`: every reading; cleanup keeps the last ``count``
  (1–8192) of each topic.
* :class:`TimeWindow`: the readings between two dates; each row expires
  ``expire_after`` seconds after its time (None: kept).
* :class:`Aggregation`: min, max, sum, count (and so avg) of numbers over
  calendar windows of 1 min–12 h aligned to local 00:00 of an IANA zone
  (UTC by default), by :class:`~pyrf_blocks.windows.CalendarGrid`: on a
  daylight-saving day the windows stay on the local clock (a ``12h``
  window list of Europe/Berlin's 2026-03-29 is 11 h then 12 h).  The open window's
  partial aggregate is written at every flush, with the time of the last
  reading counted, so a restart continues it (:meth:`Aggregation.restore`)
  and a reading delivered again is not counted twice.
* :class:`VideoPolicy`: the images of each window, stored as they come,
  made into a video by ffmpeg when the window is over.

A policy's :meth:`take` adds rows to the batch being buffered;
:meth:`flush` adds what it holds back (partial aggregates, finished
videos) when the batch is written.  Those that remember something between
readings (:class:`LastValue`, :class:`Aggregation`, :class:`VideoPolicy`)
give it as msgpack-encodable data (``get_state``) and take it back
(``set_state``), for a block that moves to another worker.
"""

import io
import os
import shutil
import subprocess
import tempfile

from ..storage.rows import Aggregate, Frame, Reading, Video
from ..windows import CalendarGrid

__all__ = ["LastValue", "NRecords", "TimeWindow", "Aggregation", "VideoPolicy",
           "window_grid", "MAX_RECORDS"]

NS = 10 ** 9
DAY = 86400 * NS
#: The most records :class:`NRecords` keeps per topic.
MAX_RECORDS = 8192


def window_grid(window, zone="UTC", what="aggregation"):
    """
    The :class:`~pyrf_blocks.windows.CalendarGrid` of a policy's windows of
    ``window`` seconds (1 min to 12 h, dividing a day) aligned to 00:00 in
    ``zone`` (an IANA name).

    :raises ValueError: naming ``what``, the size or the zone.
    """
    if not 60 <= window <= 43200:
        raise ValueError(f"{what}: window_size {window:g} s; 1 min to 12 h")
    window_ns = int(round(window * NS))
    if DAY % window_ns:
        raise ValueError(f"{what}: window_size {window:g} s does not divide a day, so its "
                         "windows cannot all start at 00:00; use 1m, 5m, 15m, 1h, 12h...")
    return CalendarGrid(window_ns, zone)


def _window(grid, time):
    start = grid.floor(time)
    return start, grid.shift(start, 1)


class LastValue:
    """
    The latest reading of each topic, at most one per ``min_interval``
    seconds; images' and files' bytes expire ``file_ttl`` seconds after.
    """

    table = "last_value"

    def __init__(self, min_interval=0.0, file_ttl=None):
        self.min_interval_ns = int(min_interval * NS)
        self.file_ttl_ns = None if file_ttl is None else int(file_ttl * NS)
        self._written = {}
        # One row per topic and batch: a later reading replaces the earlier
        # one in the batch, as its upsert would in the table (a stream of
        # values otherwise cost an upsert each on the store's thread).
        self._batch = None
        self._slots = {}

    def take(self, reading, batch):
        topic = reading.topic
        last = self._written.get(topic)
        if last is not None and reading.time - last < self.min_interval_ns:
            return
        self._written[topic] = reading.time
        if self.file_ttl_ns is not None and reading.kind in ("image", "file"):
            reading = Reading(topic, reading.time, reading.kind, reading.value,
                              reading.time + self.file_ttl_ns)
        rows = batch.last_value
        if batch is not self._batch:
            self._batch, self._slots = batch, {}
        slot = self._slots.get(topic)
        if slot is None:
            self._slots[topic] = len(rows)
            rows.append(reading)
        elif rows[slot].time <= reading.time:
            rows[slot] = reading

    def flush(self, batch, now):
        pass

    def get_state(self):
        return {"written": dict(self._written)}

    def set_state(self, state):
        self._written = dict(state["written"])


class NRecords:
    """
    Every reading; :attr:`count` is what cleanup keeps per topic.
    """

    table = "n_records"

    def __init__(self, count=1024):
        if not 1 <= count <= MAX_RECORDS:
            raise ValueError(f"n_records: count_records {count}; 1 to {MAX_RECORDS}")
        self.count = count

    def take(self, reading, batch):
        batch.n_records.append(reading)

    def flush(self, batch, now):
        pass


class TimeWindow:
    """
    The readings in ``[start, end)`` (ns; None: unbounded), each expiring
    ``expire_after`` seconds after its time.
    """

    table = "time_window"

    def __init__(self, start=None, end=None, expire_after=None):
        if start is not None and end is not None and end <= start:
            raise ValueError("time_window: the end is not after the start")
        self.start = start
        self.end = end
        self.expire_after_ns = None if expire_after is None else int(expire_after * NS)

    def take(self, reading, batch):
        if ((self.start is not None and reading.time < self.start) or
                (self.end is not None and reading.time >= self.end)):
            return
        expires = None if self.expire_after_ns is None else reading.time + self.expire_after_ns
        batch.time_window.append(Reading(reading.topic, reading.time, reading.kind,
                                         reading.value, expires))

    def flush(self, batch, now):
        pass


class _Open:
    __slots__ = ("start", "end", "count", "min", "max", "sum", "last_time", "dirty")

    def __init__(self, start, end, count=0, minimum=None, maximum=None, total=0.0,
                 last_time=-1):
        self.start, self.end = start, end
        self.count, self.min, self.max, self.sum = count, minimum, maximum, total
        self.last_time = last_time
        self.dirty = False

    def row(self, topic):
        return Aggregate(topic, self.start, self.end, self.count, self.min, self.max,
                         self.sum, self.last_time)


class Aggregation:
    """
    Numbers aggregated over calendar windows of ``window`` seconds (60 to
    43200, dividing a day) from local 00:00 in ``zone`` (an IANA name).
    ``functions`` (of avg, min, max, sum) are what a query shows first;
    every row holds all four.  A row is keyed by its window's start (ns,
    UTC), so writing it again replaces it.
    """

    table = "aggregation"
    FUNCTIONS = ("avg", "min", "max", "sum")

    def __init__(self, window=3600.0, functions=("avg",), zone="UTC"):
        self.grid = window_grid(window, zone, "aggregation")
        for name in functions:
            if name not in self.FUNCTIONS:
                raise ValueError(f"aggregation: function {name!r}; one of "
                                 f"{', '.join(self.FUNCTIONS)}")
        self.window_ns = self.grid.period
        self.zone = self.grid.zone_name
        self.functions = tuple(functions)
        self._open = {}

    def restore(self, store, topic):
        """
        Continue ``topic``'s most recent window in ``store`` (an IStore;
        blocking), if it is a window of this size.
        """
        rows = store.query(topic, "aggregation", limit=1)
        if not rows:
            return
        row = rows[0]
        if _window(self.grid, row["window_start"]) != (row["window_start"], row["window_end"]):
            return
        self._open[topic] = _Open(row["window_start"], row["window_end"], row["count"],
                                  row["min"], row["max"], row["sum"], row["last_time"])

    def take(self, reading, batch):
        if reading.kind != "number":
            return
        topic, time, value = reading.topic, reading.time, reading.value
        held = self._open.get(topic)
        if held is None or not held.start <= time < held.end:
            if held is not None and time < held.start:
                return  # older than the open window: it was counted in its own
            if held is not None and held.dirty:
                batch.aggregation.append(held.row(topic))
            held = self._open[topic] = _Open(*_window(self.grid, time))
        if time <= held.last_time:
            return  # delivered again: counted already
        held.count += 1
        held.sum += value
        held.min = value if held.min is None or value < held.min else held.min
        held.max = value if held.max is None or value > held.max else held.max
        held.last_time = time
        held.dirty = True

    def flush(self, batch, now):
        for topic, held in self._open.items():
            if held.dirty:
                batch.aggregation.append(held.row(topic))
                held.dirty = False

    def get_state(self):
        return {"open": {topic: [getattr(held, name) for name in _Open.__slots__]
                         for topic, held in self._open.items()}}

    def set_state(self, state):
        self._open = {}
        for topic, fields in state["open"].items():
            held = self._open[topic] = _Open(*fields[:7])
            held.dirty = fields[7]


class VideoPolicy:
    """
    The images of each calendar window of ``window`` seconds (from local
    00:00 in ``zone``, as :class:`Aggregation`'s), made into a video with
    ffmpeg once the window is over: when a reading of a later window
    arrives, or at the first write after its end.
    ``frame_rate``: frames per second, or ``"dynamic"``: the window's
    frames over 10 s (1 to 30 fps).  ``codec``: an ffmpeg encoder
    (``H.264/AVC`` means ``libx264``).

    Frames are stored (``video_frames``) with the batch of their message,
    so acknowledging them loses nothing: the video is made from the stored
    frames, and after a restart the open window is found again
    (:meth:`restore`).
    """

    table = "video"
    CODECS = {"H.264/AVC": "libx264", "h264": "libx264", "H.265/HEVC": "libx265",
              "VP9": "libvpx-vp9", "mjpeg": "mjpeg"}

    def __init__(self, window=3600.0, frame_rate="dynamic", codec="H.264/AVC",
                 ffmpeg=None, zone="UTC"):
        self.grid = window_grid(window, zone, "video")
        if frame_rate != "dynamic" and not (isinstance(frame_rate, (int, float)) and
                                            0 < frame_rate <= 240):
            raise ValueError(f"video: frame_rate_per_second {frame_rate!r}; dynamic or "
                             "a number of frames per second")
        self.window_ns = self.grid.period
        self.zone = self.grid.zone_name
        self.frame_rate = frame_rate
        self.codec = codec
        self.encoder = self.CODECS.get(codec, codec)
        self.ffmpeg = ffmpeg or shutil.which("ffmpeg")
        self._windows = {}

    def restore(self, store, topic):
        """
        Find ``topic``'s window whose frames are stored but whose video is
        not made yet (``store`` an IStore; blocking).
        """
        rows = store.query(topic, "video_frames", limit=1)
        if not rows:
            return
        window = _window(self.grid, rows[0]["window_start"])
        if window[0] == rows[0]["window_start"] and \
                not store.query(topic, "video", start=window[0], end=window[0] + 1):
            self._windows[topic] = window

    def take(self, reading, batch):
        if reading.kind != "image":
            return
        window = _window(self.grid, reading.time)
        held = self._windows.get(reading.topic)
        if held is not None and held != window:
            if reading.time < held[0]:
                return  # delivered again: its window's frames are stored
            batch.video.append(_PendingVideo(self, reading.topic, held))
        self._windows[reading.topic] = window
        batch.video_frames.append(Frame(reading.topic, reading.time, window[0], reading.value))

    def get_state(self):
        return {"windows": {topic: list(window) for topic, window in self._windows.items()}}

    def set_state(self, state):
        self._windows = {topic: tuple(window) for topic, window in state["windows"].items()}

    def flush(self, batch, now):
        for topic, window in list(self._windows.items()):
            if window[1] <= now:
                batch.video.append(_PendingVideo(self, topic, window))
                del self._windows[topic]

    def encode(self, frames):
        """
        The bytes of an MP4 video of ``frames`` (image bytes), by ffmpeg.
        """
        if self.ffmpeg is None:
            raise RuntimeError("video: ffmpeg is not installed (sh tools/system-deps.sh)")
        rate = (min(30.0, max(1.0, len(frames) / 10.0)) if self.frame_rate == "dynamic"
                else float(self.frame_rate))
        from PIL import Image
        with tempfile.TemporaryDirectory(prefix="pyrf-video-") as folder:
            for index, data in enumerate(frames):
                with Image.open(io.BytesIO(data)) as image:
                    image.convert("RGB").save(os.path.join(folder, f"{index:06d}.png"))
            target = os.path.join(folder, "video.mp4")
            subprocess.run([self.ffmpeg, "-loglevel", "error", "-y", "-framerate", str(rate),
                            "-i", os.path.join(folder, "%06d.png"), "-c:v", self.encoder,
                            "-pix_fmt", "yuv420p", "-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2",
                            target], check=True, capture_output=True, timeout=600)
            with open(target, "rb") as video:
                return video.read()


class _PendingVideo:
    """
    A video to make on the store's thread (ffmpeg takes seconds) from the
    stored frames of its window, once they are written.
    """

    def __init__(self, policy, topic, window):
        self.policy, self.topic, self.window = policy, topic, window

    def made(self, store):
        start, end = self.window
        frames = [store.blob(row["blob"])
                  for row in store.query(self.topic, "video_frames", start, end)]
        return Video(self.topic, start, end, len(frames), self.policy.codec,
                     self.policy.encode(frames))
