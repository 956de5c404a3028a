"""
The stages of a sensor pipeline on a task.Clock, writing into a memory
store: active period, filters, transformations, policies, buffering.
"""

import datetime
import io
import math
import tarfile
import zipfile
import zlib

import numpy as np
import pytest

from pyrf_blocks.errors import PayloadRejected, StoreUnavailable
from pyrf_blocks.sensors.filters import Filters, decode
from pyrf_blocks.sensors.period import ActivePeriod
from pyrf_blocks.sensors.pipeline import SensorPipeline
from pyrf_blocks.sensors.policies import (Aggregation, LastValue, NRecords, TimeWindow,
                                          VideoPolicy, window_grid)
from pyrf_blocks.sensors.transforms import FileTransform, ImageTransform, NumericTransform
from pyrf_blocks.storage import InlineStore, MemoryStore

S = 10 ** 9
DAY = 86400 * S


def _png(width=20, height=10, color=(200, 10, 10)):
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), color).save(out, format="PNG")
    return out.getvalue()


def _pipeline(clock, store=None, **options):
    store = MemoryStore() if store is None else store
    pipeline = SensorPipeline("test", ["t"], **options)
    pipeline.start(InlineStore(store), clock)
    return pipeline, store


def test_active_periods():
    """Each kind of active period takes what lies in [start, end) and nothing else."""
    assert ActivePeriod().active(0)
    assert ActivePeriod("from_date", start=10).active(10)
    assert not ActivePeriod("from_date", start=10).active(9)
    assert ActivePeriod("to_date", end=20, now=5).active(19)
    assert not ActivePeriod("to_date", end=20, now=5).active(4)
    span = ActivePeriod("date_range", start=10, end=20)
    assert [span.active(t) for t in (9, 10, 19, 20)] == [False, True, True, False]
    with pytest.raises(ValueError, match="end is not after"):
        ActivePeriod("date_range", start=20, end=10)


def test_decode_by_type():
    """A payload decodes to its type's value, or is rejected naming the reason."""
    assert decode("number", b" 2.5 ") == 2.5 and decode("number", b"null") is None
    assert math.isinf(decode("number", b"-inf"))
    assert decode("text", "héllo".encode()) == "héllo"
    assert decode("image", _png()) == _png()
    for kind, payload, reason in (("number", b"abc", "type"), ("text", b"\xff", "encoding"),
                                  ("image", b"not an image", "image")):
        with pytest.raises(PayloadRejected) as caught:
            decode(kind, payload)
        assert caught.value.reason == reason


def test_filters_lists_thresholds_rate_unique_size():
    """Whitelist, blacklist (null, NaN, inf), min/max, rate, uniqueness drop; oversize is bad."""
    white = Filters("number", whitelist=[1, 2, 3])
    assert white.check("t", 0, b"2") == (2.0, None)
    assert white.check("t", 1, b"4") == (None, "whitelist")
    black = Filters("number", blacklist=[None, "None", float("nan"), float("inf"),
                                         float("-inf")])
    for payload in (b"null", b"None", b"nan", b"inf", b"-inf"):
        assert black.check("t", 0, payload) == (None, "blacklist")
    assert black.check("t", 0, b"1") == (1.0, None)
    ranged = Filters("number", minimum=-40, maximum=120)
    assert [ranged.check("t", 0, p)[1] for p in (b"-41", b"-40", b"120", b"121", b"nan")] == \
        ["min", None, None, "max", "min"]
    rate = Filters("number", max_rate=10.0)
    assert [rate.check("t", t * S, b"1")[1] for t in (0, 5, 10, 12)] == [None, "rate", None,
                                                                          "rate"]
    assert rate.check("other", 5 * S, b"1")[1] is None
    unique = Filters("text", unique=True)
    assert [unique.check("t", 0, p)[1] for p in (b"a", b"a", b"b", b"a")] == \
        [None, "unique", None, None]
    sized = Filters("text", max_size=3)
    assert sized.check("t", 0, "äöü".encode()) == ("äöü", None)  # characters, not bytes
    with pytest.raises(PayloadRejected, match="4 characters, more than max_size 3"):
        sized.check("t", 0, b"abcd")
    with pytest.raises(PayloadRejected, match="null payload"):
        Filters("number").check("t", 0, b"null")


def test_numeric_transform_scales_then_rounds():
    """multiplication then round, as the seed's example orders them."""
    assert NumericTransform(0.3, 3).apply(10.0, "t", 0) == 3.0
    assert NumericTransform(None, 1).apply(1.26, "t", 0) == 1.3


def test_image_transform_resize_dpi_crop_format():
    """An image is resized, cropped and written in the asked format with the asked density."""
    from PIL import Image

    out = ImageTransform(size=(640, 320), dpi=300, clip=(50, 50, 240, 120),
                         image_format="jpg").apply(_png(), "t", 0)
    with Image.open(io.BytesIO(out)) as image:
        assert image.format == "JPEG" and image.size == (240, 120)
        assert round(image.info["dpi"][0]) == 300
    with pytest.raises(ValueError, match="Pillow writes no SVG"):
        ImageTransform(image_format="svg")


def test_file_transforms_make_readable_archives():
    """tgz (with level and wbits), tar and zip hold the payload as their one member."""
    data = b"log line\n" * 100
    tgz = FileTransform("tgz", level=9, wbits=12).apply(data, "a/b", 5 * S)
    with tarfile.open(fileobj=io.BytesIO(tgz), mode="r:gz") as archive:
        [member] = archive.getmembers()
        assert archive.extractfile(member).read() == data and member.name == "a_b-5000000000"
    assert len(tgz) < len(data)
    assert zlib.decompress(tgz, 16 + 15)  # a gzip stream
    with tarfile.open(fileobj=io.BytesIO(FileTransform("tar").apply(data, "t", 0))) as tar:
        assert tar.extractfile(tar.getmembers()[0]).read() == data
    with zipfile.ZipFile(io.BytesIO(FileTransform("zip", level=1).apply(data, "t", 0))) as z:
        assert z.read(z.namelist()[0]) == data
    with pytest.raises(ValueError, match="level 15; 0 to 9"):
        FileTransform("tgz", level=15)


def _utc(text):
    return int(datetime.datetime.fromisoformat(text).timestamp()) * S


def test_calendar_windows_align_to_midnight():
    """In UTC windows start at 00:00 and every size after; a size that does not divide a day is refused."""
    hour = window_grid(3600.0)
    assert hour.floor(DAY * 3 + 90 * 60 * S) == DAY * 3 + 3600 * S
    with pytest.raises(ValueError, match="7m|420 s does not divide a day"):
        window_grid(420.0)
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Olympus'"):
        Aggregation(3600.0, zone="Mars/Olympus")


def test_twelve_hour_windows_on_a_dst_day_follow_the_local_clock(clock):
    """Europe/Berlin 2026-03-29 (clocks go 02:00 -> 03:00): 12h windows are 00:00-12:00 (11 h) and 12:00-24:00 local."""
    pipeline, store = _pipeline(clock, policies=[Aggregation(43200.0, zone="Europe/Berlin")],
                                max_items=1)
    first = _utc("2026-03-28T23:00:00+00:00")  # local 00:00 CET
    for hour in range(23):  # the local day has 23 hours
        pipeline.receive("t", first + hour * 3600 * S, b"1")
    rows = store.query("t", "aggregation")
    assert [(r["window_start"], r["window_end"], r["count"]) for r in rows] == [
        (first, _utc("2026-03-29T10:00:00+00:00"), 11),
        (_utc("2026-03-29T10:00:00+00:00"), _utc("2026-03-29T22:00:00+00:00"), 12)]


@pytest.mark.parametrize("size", [60, 300, 900, 3600, 4 * 3600, 43200])
def test_window_sizes_align_to_local_midnight_across_dst(size):
    """1 min to 12 h windows over Berlin's DST day start on local multiples of the size from 00:00, back to back."""
    from zoneinfo import ZoneInfo

    berlin = ZoneInfo("Europe/Berlin")
    policy = Aggregation(float(size), zone="Europe/Berlin")
    lo, hi = _utc("2026-03-28T23:00:00+00:00"), _utc("2026-03-29T22:00:00+00:00")
    starts = policy.grid.boundaries(lo, hi)
    assert starts[0] == lo and starts[-1] == hi and np.all(np.diff(starts) > 0)
    for start in starts.tolist():
        local = datetime.datetime.fromtimestamp(start // S, berlin)
        assert (local.hour * 3600 + local.minute * 60 + local.second) % size == 0
    # Local 02:00-03:00 does not exist: the day has 23 hours.
    windows = {60: 23 * 60, 300: 23 * 12, 900: 23 * 4, 3600: 23, 4 * 3600: 6, 43200: 2}
    assert len(starts) - 1 == windows[size]


def test_aggregation_restores_a_dst_shortened_window(clock):
    """After a restart the 11 h Berlin window of 2026-03-29 is continued, not replaced."""
    store = MemoryStore()
    policy = dict(policies=[Aggregation(43200.0, zone="Europe/Berlin")], max_items=1)
    first, _ = _pipeline(clock, store, **policy)
    start = _utc("2026-03-29T01:00:00+00:00")
    first.receive("t", start, b"2")
    second, _ = _pipeline(clock, store, **policy)
    second.restore(store)
    second.receive("t", start, b"2")  # redelivered
    second.receive("t", start + S, b"4")
    [row] = store.query("t", "aggregation")
    assert (row["count"], row["sum"], row["window_end"] - row["window_start"]) == \
        (2, 6.0, 11 * 3600 * S)


def test_policies_write_their_tables_when_the_buffer_flushes(clock):
    """Every policy's rows reach the store in one batch, after accumulation_time, then acks."""
    acked = []
    pipeline, store = _pipeline(
        clock, policies=[LastValue(min_interval=30.0), NRecords(3),
                         TimeWindow(start=10 * S, end=50 * S, expire_after=100.0),
                         Aggregation(window=60.0)],
        max_items=100, accumulation_time=5.0)
    for second in range(0, 70, 5):
        pipeline.receive("t", second * S, str(second).encode(), lambda s=second: acked.append(s))
    assert store.query("t", "n_records") == [] and acked == []
    clock.advance(5.0)
    assert acked == list(range(0, 70, 5))
    assert [r["time"] for r in store.query("t", "last_value")] == [60 * S]
    assert len(store.query("t", "n_records")) == 14
    assert [r["time"] // S for r in store.query("t", "time_window")] == list(range(10, 50, 5))
    windows = store.query("t", "aggregation")
    assert [(w["count"], w["avg"], w["min"], w["max"]) for w in windows] == \
        [(12, 27.5, 0.0, 55.0), (2, 62.5, 60.0, 65.0)]
    store.cleanup(now=0, keep=pipeline.retention())
    assert len(store.query("t", "n_records")) == 3


def test_aggregation_restores_and_skips_redelivered(clock):
    """After a restart the open window continues, and a reading delivered again counts once."""
    store = MemoryStore()
    first, _ = _pipeline(clock, store, policies=[Aggregation(window=60.0)], max_items=2)
    first.receive("t", 1 * S, b"1")
    first.receive("t", 2 * S, b"2")
    second, _ = _pipeline(clock, store, policies=[Aggregation(window=60.0)], max_items=2)
    second.restore(store)
    second.receive("t", 2 * S, b"2")  # redelivered with its first time
    second.receive("t", 3 * S, b"3")
    [row] = store.query("t", "aggregation")
    assert (row["count"], row["sum"], row["last_time"]) == (3, 6.0, 3 * S)


def test_bad_payloads_counted_never_fatal(clock):
    """Wrong types and oversize payloads are counted per reason and stored; good ones pass."""
    pipeline, store = _pipeline(clock, filters=Filters("number", max_size=8),
                                policies=[NRecords(10)], max_items=5)
    for t, payload in enumerate((b"1", b"x", b"123456789", b"2", b"")):
        pipeline.receive("t", t, payload)
    assert store.bad_counts() == {("t", "type"): 2, ("t", "size"): 1}
    assert [r["number"] for r in store.query("t", "n_records")] == [1.0, 2.0]
    assert pipeline.bad == {"type": 2, "size": 1}


def test_inactive_and_filtered_are_acknowledged_not_stored(clock):
    """Messages outside the period or dropped by a filter are acknowledged with their batch."""
    acked = []
    pipeline, store = _pipeline(clock, period=ActivePeriod("from_date", start=10),
                                filters=Filters("number", minimum=0),
                                policies=[NRecords(10)], max_items=3)
    for t, payload in ((5, b"1"), (10, b"-1"), (11, b"1")):
        pipeline.receive("t", t, payload, lambda t=t: acked.append(t))
    assert acked == [5, 10, 11] and len(store.query("t", "n_records")) == 1
    assert pipeline.dropped == {"inactive": 1, "min": 1}


def test_store_away_keeps_the_batch_and_retries(clock):
    """A failing store acknowledges nothing; the batch is written with backoff once it is back."""
    class Flaky(MemoryStore):
        down = True

        def write(self, batch):
            if self.down:
                raise StoreUnavailable("down")
            super().write(batch)

    store = Flaky()
    acked = []
    pipeline, _ = _pipeline(clock, store, policies=[NRecords(100)], max_items=2)
    for t in range(4):
        pipeline.receive("t", t, b"1", lambda t=t: acked.append(t))
    assert acked == [] and pipeline.buffer.waiting == 4
    store.down = False
    clock.advance(1.0)
    assert acked == [0, 1, 2, 3] and len(store.query("t", "n_records")) == 4


def test_video_policy_makes_a_video_per_window(clock):
    """Frames are stored as they come; a closed window's frames become one video (ffmpeg), even across a restart."""
    import shutil

    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg is not installed (sh tools/system-deps.sh)")
    store = MemoryStore()
    options = dict(filters=Filters("image"), policies=[VideoPolicy(window=60.0, frame_rate=2)],
                   max_items=100, accumulation_time=1.0)
    first, _ = _pipeline(clock, store, **options)
    for t in range(2):
        first.receive("t", t * S, _png(color=(t * 60, 0, 0)))
    clock.advance(1.0)
    assert len(store.query("t", "video_frames")) == 2  # durable, and acknowledged
    second, _ = _pipeline(clock, store, **options)  # a restart
    second.restore(store)
    for t in range(2, 4):
        second.receive("t", t * S, _png(color=(t * 60, 0, 0)))
    second.receive("t", 61 * S, _png())  # the next window closes the first
    clock.advance(1.0)
    [video] = store.query("t", "video")
    assert video["frames"] == 4 and store.blob(video["blob"])[4:8] == b"ftyp"
    removed = store.cleanup(now=0, grace=-1.0)
    assert removed["video_frames"] == 4
    assert [r["time"] for r in store.query("t", "video_frames")] == [61 * S]


def test_held_messages_wait_for_release(clock):
    """A pipeline on hold keeps messages aside and handles them, in order, on release."""
    pipeline, store = _pipeline(clock, policies=[NRecords(10)], max_items=2)
    pipeline.hold()
    pipeline.receive("t", 1, b"1")
    pipeline.receive("t", 2, b"2")
    assert store.query("t", "n_records") == []
    pipeline.release()
    assert [r["number"] for r in store.query("t", "n_records")] == [1.0, 2.0]


def test_aggregation_restores_only_windows_of_its_size(clock):
    """A stored window of another size (the file changed) is not continued."""
    store = MemoryStore()
    first, _ = _pipeline(clock, store, policies=[Aggregation(window=3600.0)], max_items=1)
    first.receive("t", 1 * S, b"1")
    second, _ = _pipeline(clock, store, policies=[Aggregation(window=60.0)], max_items=1)
    second.restore(store)
    second.receive("t", 2 * S, b"5")
    rows = store.query("t", "aggregation")
    # Not counted on top of the hour's reading: a fresh 1 min window (with
    # the same start, it takes the row of the 1 h window).
    assert [(r["window_end"] - r["window_start"], r["count"], r["sum"]) for r in rows] == \
        [(60 * S, 1, 5.0)]


def test_a_failing_stage_is_counted_not_fatal(clock):
    """An unexpected error in a stage is logged and counted as an 'error' bad payload; the next message passes."""
    class Broken:
        kind = "number"

        def apply(self, value, topic, time):
            if value == 13:
                raise ZeroDivisionError("unlucky")
            return value

    pipeline, store = _pipeline(clock, transforms=[Broken()], policies=[NRecords(10)],
                                max_items=2)
    pipeline.receive("t", 1, b"13")
    pipeline.receive("t", 2, b"14")
    assert store.bad_counts() == {("t", "error"): 1}
    assert [r["number"] for r in store.query("t", "n_records")] == [14.0]


def test_numeric_formula_then_scale_then_round():
    """A formula of value and time (Unix seconds) runs before multiplication and round."""
    assert NumericTransform(formula="value * 9 / 5 + 32").apply(100.0, "t", 0) == 212.0
    assert NumericTransform(2.0, 1, formula="value + time").apply(1.04, "t", 3 * S) == 8.1


def test_formula_errors_at_run_time_are_bad_payloads(clock):
    """inf, nan and a formula past its time limit are 'transform' bad payloads; the pipeline goes on."""
    pipeline, store = _pipeline(
        clock, transforms=[NumericTransform(formula="1 / value"), NumericTransform(
            formula="sqrt(value - 1) + 0 * value")], policies=[NRecords(10)], max_items=4)
    for t, payload in enumerate((b"0", b"0.5", b"2", b"1")):
        pipeline.receive("t", t, payload)
    assert store.bad_counts() == {("t", "transform"): 2}
    assert [r["number"] for r in store.query("t", "n_records")] == [1.0, 0.0]
    [detail, _] = [r["detail"] for r in store.query("t", "bad_payloads")]
    assert "'1 / value' of value 0.0 is inf" in detail
    # A limit of 1 ns has passed by the first operation's check.
    timed, _ = _pipeline(clock, transforms=[NumericTransform(formula="value + 1", timeout=1e-9)],
                         policies=[NRecords(10)], max_items=2)
    timed.receive("t", 1, b"1")
    timed.receive("t", 2, b"2")
    assert timed.bad == {"transform": 2}



def test_messages_during_a_write_make_one_next_write(clock):
    """Messages arriving while a batch is written go out together in one next write, its hooks run once."""
    from twisted.internet.defer import Deferred

    from pyrf_blocks.sensors.buffering import Buffer

    class Slow:
        def __init__(self):
            self.store = MemoryStore()
            self.writes = []

        def call(self, function, *args):
            self.writes.append((Deferred(), function, args))
            return self.writes[-1][0]

    def finish(write):
        done, function, args = write
        function(*args)
        done.callback(None)

    hooks = []
    store = Slow()
    buffer = Buffer(store, clock, max_items=2, before_write=[lambda batch, now: hooks.append(now)])
    acked = []
    for n in range(12):
        buffer.added(lambda n=n: acked.append(n))
    assert len(store.writes) == 1 and buffer.waiting == 12
    finish(store.writes[0])
    assert acked == [0, 1] and len(store.writes) == 2
    finish(store.writes[1])
    assert acked == list(range(12)) and len(store.writes) == 2
    assert len(hooks) == 2 and buffer.stats == {"messages": 12, "batches": 2, "failures": 0}


def test_last_value_puts_one_row_per_topic_in_a_batch(clock):
    """A batch carries only each topic's latest reading for last_value (an older redelivery does not replace it)."""
    pipeline, store = _pipeline(clock, policies=[LastValue()], max_items=100)
    for topic, second in [("a", 1), ("b", 2), ("a", 3), ("a", 2), ("b", 5)]:
        pipeline.receive(topic, second * S, str(second).encode())
    rows = pipeline.buffer.batch.last_value
    assert [(r.topic, r.time // S) for r in rows] == [("a", 3), ("b", 5)]
    pipeline.flush()
    pipeline.receive("a", 7 * S, b"7")
    assert [(r.topic, r.time // S) for r in pipeline.buffer.batch.last_value] == [("a", 7)]
    pipeline.flush()
    assert [(r["topic"], r["number"]) for r in store.query("a", "last_value") +
            store.query("b", "last_value")] == [("a", 7.0), ("b", 5.0)]
