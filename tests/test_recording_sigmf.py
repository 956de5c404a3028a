"""
SigMF recordings: record_block and sigmf_source round trips, files written
by the sigmf package's own writer, device time to the nanosecond, captures
and annotations, and a recording of the emulator replayed identically.
"""

import json

import numpy as np
import pytest
import sigmf
from hypothesis import given, settings, strategies as st
from numpy.testing import assert_array_equal
from twisted.internet import defer, task

from pyrf_blocks import Graph, collector
from pyrf_blocks.blocks.recording import (_schema_validator, _validate_sigmf, format_datetime,
                                          parse_datetime, record_block, sigmf_source)
from pyrf_blocks.instruments import WSA5000
from pyrf_blocks.interfaces import IIQProducer, IRealProducer, ISink
from pyrf_blocks.testing import (array_source, assert_provides, new_reactor, recording_sink,
                                 run_clock, run_until, split_array, start_emulator, wait_for)

START = 1_763_800_000_123_456_789
META = {"center_frequency": 2.4e9, "reference_level": -10.0, "sample_rate": 1e6}


def _iq(count, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.integers(-8192, 8192, 2 * count).astype(np.float32) / 8192).view(np.complex64)


def _record(arrays, path, **kwargs):
    clock = task.Clock()
    graph = Graph(clock)
    source = array_source(arrays, rate=1e6, start_time=START, meta=META, graph=graph)
    recorder = record_block(source, path, **kwargs)
    assert run_clock(clock, graph) is None
    return recorder


def _replay(path, **kwargs):
    clock = task.Clock()
    graph = Graph(clock)
    source = sigmf_source(path, graph=graph, **kwargs)
    sink = recording_sink(source)
    assert run_clock(clock, graph) is None
    assert sink.problems == []
    return source, sink


def test_datetime_keeps_nanoseconds():
    """core:datetime round-trips device time exactly; fewer digits read as well."""
    assert format_datetime(START) == "2025-11-22T08:26:40.123456789Z"
    assert parse_datetime(format_datetime(START)) == START
    assert parse_datetime("2025-11-22T08:26:40Z") == START - 123_456_789
    assert parse_datetime("2025-11-22T08:26:40.5Z") == START - 123_456_789 + 500_000_000
    with pytest.raises(ValueError, match="not a SigMF datetime"):
        parse_datetime("22/11/2025")


@pytest.mark.parametrize("datatype", ["cf32_le", "ci16_le"])
def test_round_trip_is_identical(tmp_path, datatype):
    """Recorded then replayed: the same samples, times and meta, for both datatypes."""
    samples = _iq(5000)
    recorder = _record(split_array(samples, [1000, 3000]), tmp_path / "rec", datatype=datatype)
    assert_provides(ISink, recorder)
    source, sink = _replay(tmp_path / "rec", chunk_size=1024)
    assert_provides(IIQProducer, source)
    assert_array_equal(sink.data(), samples)
    assert sink.chunks[0].start == START
    assert sink.chunks[-1].end == START + 5000 * 1000
    assert all(chunk.meta == META for chunk in sink.chunks)
    meta = json.loads((tmp_path / "rec.sigmf-meta").read_text())
    assert meta["global"]["core:datatype"] == datatype
    assert meta["global"]["core:sample_rate"] == 1e6
    assert meta["captures"] == [{"core:sample_start": 0, "core:frequency": 2.4e9,
                                 "core:datetime": "2025-11-22T08:26:40.123456789Z",
                                 "pyrf:meta": META}]
    width = 8 if datatype == "cf32_le" else 4
    assert (tmp_path / "rec.sigmf-data").stat().st_size == 5000 * width


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(1, 700), max_size=12), st.integers(1, 2000))
def test_replay_does_not_depend_on_chunking(tmp_path_factory, cuts, chunk_size):
    """However the stream was cut when recorded or replayed, the samples and times agree."""
    path = tmp_path_factory.mktemp("rechunk") / "rec"
    samples = _iq(2500, seed=len(cuts))
    _record(split_array(samples, cuts), path)
    _, sink = _replay(path, chunk_size=chunk_size)
    assert_array_equal(sink.data(), samples)
    for chunk in sink.chunks:
        first = (chunk.start - START) // 1000
        assert chunk.end - chunk.start == len(chunk.data) * 1000
        assert_array_equal(chunk.data, samples[first:first + len(chunk.data)])


def test_gaps_and_retunes_make_new_captures(tmp_path):
    """A gap in device time or a new centre frequency starts a capture; gaps are annotated."""
    from pyrf_blocks.chunk import Chunk
    a, b, c = _iq(100), _iq(100, 1), _iq(100, 2)
    retuned = dict(META, center_frequency=915e6)
    chunks = [Chunk("iq", a, START, START + 100_000, 1e6, 0, META),
              Chunk("iq", b, START + 150_000, START + 250_000, 1e6, 1, META),
              Chunk("iq", c, START + 250_000, START + 350_000, 1e6, 2, retuned)]
    _record(chunks, tmp_path / "gaps")
    meta = json.loads((tmp_path / "gaps.sigmf-meta").read_text())
    assert [c["core:sample_start"] for c in meta["captures"]] == [0, 100, 200]
    assert [c["core:frequency"] for c in meta["captures"]] == [2.4e9, 2.4e9, 915e6]
    assert meta["annotations"] == [{"core:sample_start": 100, "core:sample_count": 0,
                                    "core:label": "gap",
                                    "core:comment": "50000 ns of device time missing "
                                                    "before this sample"}]
    _, sink = _replay(tmp_path / "gaps", chunk_size=1000)
    assert [(k.start, k.end) for k in sink.chunks] == [(k.start, k.end) for k in chunks]
    assert [k.meta["center_frequency"] for k in sink.chunks] == [2.4e9, 2.4e9, 915e6]


def test_sample_limit_stops_the_recording(tmp_path):
    """With samples=N exactly N samples are written and the meta file is complete."""
    recorder = _record([_iq(1000)] * 5, tmp_path / "limited", samples=2500)
    assert recorder.samples_written == 2500 and recorder.written
    source, sink = _replay(tmp_path / "limited")
    assert len(sink.data()) == 2500


def test_a_sample_limit_that_cannot_fit_on_the_disk_is_refused_at_once(tmp_path, monkeypatch):
    """samples=N whose bytes (datatype x channels) exceed the folder's free space: OSError naming both sizes, no file made; N that fits records as before."""
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda folder: usage(10**9, 0, 80_000))
    source = array_source([_iq(1000)], graph=Graph(task.Clock()))
    with pytest.raises(OSError, match=r"record_block: 80 MB of samples do not fit in the "
                                      r"80000 bytes free in " + str(tmp_path)):
        record_block(source, tmp_path / "big", samples=10_000_000)
    with pytest.raises(OSError, match="40 MB of samples"):
        record_block(source, tmp_path / "big", datatype="ci16_le", samples=10_000_000)
    assert list(tmp_path.iterdir()) == []
    recorder = _record([_iq(1000)] * 5, tmp_path / "fits", samples=10_000)  # 80 000 bytes
    assert recorder.samples_written == 5000


def test_ci16_clipping_is_counted(tmp_path):
    """Values beyond full scale clip in ci16_le and are counted, never wrapped."""
    samples = np.array([1.5 + 0j, -0.5 - 2j, 0.25 + 0.25j], np.complex64)
    recorder = _record([samples], tmp_path / "clip", datatype="ci16_le")
    assert recorder.clipped == 2
    _, sink = _replay(tmp_path / "clip")
    assert_array_equal(sink.data(), np.array([32767 / 32768, -0.5 - 1j, 0.25 + 0.25j],
                                             np.complex64))


def test_file_written_by_the_sigmf_package_replays(tmp_path):
    """A ci16_le recording from sigmf's own writer replays with its rate, frequency and time."""
    ints = np.arange(-200, 200, dtype=np.int16)
    data_path = tmp_path / "other.sigmf-data"
    ints.astype("<i2").tofile(data_path)
    meta = sigmf.SigMFFile(data_file=str(data_path), global_info={
        "core:datatype": "ci16_le", "core:sample_rate": 250e3,
        "core:author": "someone else"})
    meta.add_capture(0, metadata={"core:frequency": 433.92e6,
                                  "core:datetime": "2024-01-02T03:04:05.25Z"})
    meta.add_capture(100, metadata={"core:frequency": 868e6})
    meta.add_annotation(10, 20, metadata={"core:label": "burst"})
    meta.tofile(str(tmp_path / "other"))
    source, sink = _replay(tmp_path / "other", chunk_size=64, reference_level=-30.0)
    expected = (ints.astype(np.float32) / 32768).view(np.complex64)
    assert_array_equal(sink.data(), expected)
    start = parse_datetime("2024-01-02T03:04:05.25Z")
    assert sink.chunks[0].start == start and sink.chunks[0].rate == 250e3
    assert sink.chunks[-1].end == start + 200 * 4000
    assert [k.meta["center_frequency"] for k in sink.chunks] == [433.92e6] * 2 + [868e6] * 2
    assert sink.chunks[0].meta["reference_level"] == -30.0
    assert source.annotations[0]["core:label"] == "burst"


def test_real_and_unsigned_datatypes_replay_as_real_samples(tmp_path):
    """ru8 data replays as a real stream centred on zero."""
    raw = np.array([0, 128, 255, 64], np.uint8)
    raw.tofile(tmp_path / "u8.sigmf-data")
    meta = sigmf.SigMFFile(data_file=str(tmp_path / "u8.sigmf-data"), global_info={
        "core:datatype": "ru8", "core:sample_rate": 8.0})
    meta.tofile(str(tmp_path / "u8"))
    source, sink = _replay(tmp_path / "u8")
    assert_provides(IRealProducer, source)
    assert_array_equal(sink.data(), np.array([-1, 0, 127 / 128, -0.5], np.float32))


def test_paced_replay_keeps_device_time(tmp_path):
    """Paced, a 10 ms recording is emitted at the injected clock's pace, a chunk at a time."""
    _record([_iq(1000)] * 10, tmp_path / "paced")
    clock = task.Clock()
    graph = Graph(clock)
    sink = collector(sigmf_source(tmp_path / "paced", chunk_size=1000, paced=True,
                                  graph=graph))
    emitted = []
    while not sink.finished and clock.seconds() < 1.0:
        clock.advance(0.0005)
        emitted.append((clock.seconds(), sum(len(c.data) for c in sink.chunks)))
    assert sink.finished
    for seconds, count in emitted:
        assert count <= seconds * 1e6 + 1000 + 1e-6  # never ahead of device time
    assert clock.seconds() >= 0.009


def test_bad_files_and_parameters_are_reported_clearly(tmp_path):
    """Missing files, invalid meta, unknown datatypes and bad datatypes name the problem."""
    graph = Graph(task.Clock())
    with pytest.raises(ValueError, match="cannot read .*missing.sigmf-meta"):
        sigmf_source(tmp_path / "missing", graph=graph)
    (tmp_path / "bad.sigmf-meta").write_text('{"global": {}}')
    with pytest.raises(ValueError, match="is not valid SigMF"):
        sigmf_source(tmp_path / "bad", graph=graph)
    source = array_source([_iq(4)], graph=graph)
    with pytest.raises(ValueError, match="datatype 'ci8' cannot be written"):
        record_block(source, tmp_path / "x", datatype="ci8")
    with pytest.raises(ValueError, match="datatype 'rf32_le' does not match iq input"):
        record_block(source, tmp_path / "x", datatype="rf32_le")


def _sigmf_verdict(check, metadata):
    """What ``check(SigMFFile(metadata))`` gives: None, or the error's type and message."""
    try:
        check(sigmf.SigMFFile(metadata=metadata, skip_checksum=True))
    except Exception as error:
        return type(error), str(error)
    return None


def test_recordings_are_validated_as_sigmf_validates_them_with_the_schema_checked_once(
        monkeypatch):
    """Valid or not, metadata gets sigmf's own verdict (same error, same message); the schema is checked once per process."""
    import jsonschema

    good = {"global": {"core:datatype": "cf32_le", "core:sample_rate": 1e6,
                       "core:extensions": [{"name": "pyrf", "version": "1.0.0",
                                            "optional": True}]},
            "captures": [{"core:sample_start": 0, "core:frequency": 2.4e9},
                         {"core:sample_start": 10, "pyrf:meta": {"a": 1}}],
            "annotations": [{"core:sample_start": 2, "core:sample_count": 3}]}
    bad = [
        {"global": {}},
        {"global": {"core:datatype": 5}, "captures": []},
        {**good, "global": {**good["global"], "core:sample_rate": "fast"}},
        {**good, "captures": list(reversed(good["captures"]))},  # sample starts out of order
        {**good, "annotations": [{"core:sample_start": -1, "core:sample_count": 3}]},
        {**good, "captures": [{"core:sample_start": 0, "core:datetime": 3}]},
    ]
    expected = [_sigmf_verdict(sigmf.SigMFFile.validate, metadata) for metadata in [good, *bad]]
    assert expected[0] is None and all(expected[1:])
    schemas_checked = []
    monkeypatch.setattr(jsonschema.Draft202012Validator, "check_schema",
                        classmethod(lambda cls, schema, **_: schemas_checked.append(schema)))
    _schema_validator.cache_clear()
    try:
        verdicts = [_sigmf_verdict(_validate_sigmf, metadata) for metadata in [good, *bad]]
    finally:
        _schema_validator.cache_clear()  # (its validator was made while check_schema was replaced)
    assert verdicts == expected
    assert schemas_checked.count(sigmf.schema.get_schema()) == 1  # for 7 validations


def test_recording_the_emulator_replays_identically(tmp_path):
    """Record from the emulator over TCP, replay: identical arrays, times and metadata."""
    reactor = new_reactor()
    emulator = start_emulator(reactor, paced=False, start_time=START)
    graph = Graph(reactor)
    wsa = WSA5000("127.0.0.1", graph=graph, decimation=16, scpi_port=emulator.ports["scpi"],
                  data_port=emulator.ports["data"])
    live = collector(wsa)
    recorder = record_block(wsa, tmp_path / "emulator", datatype="ci16_le")

    @defer.inlineCallbacks
    def scenario():
        yield wait_for(reactor, lambda: len(live.chunks) >= 6)
        graph.stop()
        yield graph.done()

    run_until(reactor, scenario())
    assert recorder.clipped == 0
    _, replay = _replay(tmp_path / "emulator", chunk_size=len(live.chunks[0].data))
    assert_array_equal(replay.data(), live.data())
    assert [(c.start, c.end) for c in replay.chunks] == [(c.start, c.end) for c in live.chunks]
    assert all(r.meta == l.meta for r, l in zip(replay.chunks, live.chunks))
    meta = json.loads((tmp_path / "emulator.sigmf-meta").read_text())
    assert meta["global"]["core:hw"] == "ThinkRF,WSA5000,EMU000001,1.0.0"
