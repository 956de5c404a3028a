"""
Recording and replaying streams in SigMF: ``NAME.sigmf-data`` holds the
samples, ``NAME.sigmf-meta`` (JSON) the sample rate, datatype, captures
(centre frequency and start time of each unbroken run) and annotations.
Several synchronised channels (V and I) share one recording, interleaved
sample by sample (:class:`record_channels`); :class:`sigmf_source` plays
one of them.

:class:`record_block` writes a recording; :class:`sigmf_source` replays
one, ours or another SigMF tool's, at device-time pace or as fast as its
consumers take it.  Device time survives the round trip to the
nanosecond (``core:datetime`` with nine fractional digits) and the chunk
meta of each capture travels in ``pyrf:meta``.
"""

import datetime
import functools
import json
import os
import re
import shutil

import numpy as np
from twisted.logger import Logger
from zope.interface import implementer

from ..block import PolledSource, Sink
from ..defaults import SAMPLE_FORMAT
from ..interfaces import ISampleProducer, IStateful
from ..params import Param
from ..registry import register
from ..state import check_version
from ..timebase import Timebase, continues

__all__ = ["record_block", "record_channels", "sigmf_source", "recording_channels",
           "sigmf_paths", "check_recording_path", "format_datetime", "parse_datetime",
           "sample_dtype"]

log = Logger()

_DATATYPE = re.compile(r"^(?P<shape>[cr])(?P<type>[fiu])(?P<bits>8|16|32|64)(?:_(?P<order>le|be))?$")
_DATETIME = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?Z$")
#: Datatypes record_block writes: floats (lossless for any stream) and
#: 16-bit integers (lossless for 14- and 16-bit instrument samples).
WRITE_DATATYPES = ("cf32_le", "ci16_le", "rf32_le", "ri16_le")


def _json_value(value):
    # Meta values JSON cannot hold as they are: numpy scalars become
    # numbers, anything else (bytes) its text.
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value)


def sigmf_paths(path):
    """
    ``(meta_path, data_path)`` for a recording named ``path`` (with or
    without a ``.sigmf-meta``/``.sigmf-data``/``.sigmf`` suffix).
    """
    path = os.fspath(path)
    for suffix in (".sigmf-meta", ".sigmf-data", ".sigmf"):
        if path.endswith(suffix):
            path = path[:-len(suffix)]
            break
    return path + ".sigmf-meta", path + ".sigmf-data"


def check_recording_path(path, who="record_block"):
    """
    Refuse (``ValueError`` naming ``who`` and the folder) a recording name
    whose folder does not exist or cannot be written: a recording is not
    made in a folder that a typing mistake created.  Returns
    ``(meta_path, data_path)``.
    """
    meta_path, data_path = sigmf_paths(path)
    folder = os.path.dirname(os.path.abspath(data_path))
    if not os.path.isdir(folder):
        raise ValueError(f"{who}: path {os.fspath(path)!r}: folder {folder!r} does not "
                         "exist (create it first)")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"{who}: path {os.fspath(path)!r}: folder {folder!r} is not "
                         "writable")
    if os.path.isdir(data_path):
        raise ValueError(f"{who}: path {os.fspath(path)!r}: {data_path!r} is a folder")
    return meta_path, data_path


def format_datetime(ns):
    """
    Device time (integer ns since the Unix epoch, UTC) as a SigMF
    ``core:datetime`` with nanoseconds: ``2026-11-22T13:45:00.123456789Z``.
    """
    seconds, fraction = divmod(int(ns), 1_000_000_000)
    moment = datetime.datetime.fromtimestamp(seconds, datetime.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{fraction:09d}Z"


def parse_datetime(text):
    """
    A SigMF ``core:datetime`` as integer ns since the Unix epoch (UTC);
    any number of fractional digits.
    """
    match = _DATETIME.match(text or "")
    if match is None:
        raise ValueError(f"{text!r} is not a SigMF datetime (YYYY-MM-DDTHH:MM:SS[.fff]Z)")
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    moment = datetime.datetime(year, month, day, hour, minute, second,
                               tzinfo=datetime.timezone.utc)
    fraction = (match.group(7) or "0")[:9].ljust(9, "0")
    return int(moment.timestamp()) * 1_000_000_000 + int(fraction)


def _validate_sigmf(meta):
    """
    Raise what ``meta.validate()`` raises for a ``sigmf.SigMFFile`` that
    is not valid SigMF, with the schema itself checked once per process.

    jsonschema's ``validate`` checks the schema against its metaschema at
    every call: 34 ms of the 42 ms a validation took here, measured, for
    metadata that takes 0.4 ms to check, and a run may write and read many
    recordings.  The error is the one ``sigmf`` raises (jsonschema's best
    match); sigmf's checks beyond the schema (declared extensions, sample
    starts in order) are its own, run with a schema that accepts anything.
    """
    from jsonschema.exceptions import best_match
    from sigmf import validate

    metadata = meta._metadata  # (what SigMFFile.validate checks; it has no public name)
    validator = _schema_validator(meta.get_global_field("core:version"))
    error = best_match(validator.iter_errors(metadata))
    if error is not None:
        raise error
    validate.validate(metadata, ref_schema={})


@functools.lru_cache(maxsize=4)
def _schema_validator(version):
    """jsonschema's validator of sigmf's schema for ``version``, the schema checked."""
    from jsonschema.validators import validator_for
    from sigmf import schema

    meta_schema = schema.get_schema(version)  # (what SigMFFile.get_schema reads)
    cls = validator_for(meta_schema)
    cls.check_schema(meta_schema)
    return cls(meta_schema)


def sample_dtype(datatype):
    """
    ``(numpy dtype of one stored component, complex?, full-scale integer
    or None for floats)`` of a SigMF datatype such as ``ci16_le``.
    """
    match = _DATATYPE.match(datatype or "")
    if match is None:
        raise ValueError(f"unsupported SigMF datatype {datatype!r}")
    kind, bits = match.group("type"), int(match.group("bits"))
    if kind == "f" and bits not in (32, 64):
        raise ValueError(f"unsupported SigMF datatype {datatype!r}: floats are 32 or 64 bits")
    order = ">" if match.group("order") == "be" else "<"
    dtype = np.dtype(f"{order}{kind}{bits // 8}")
    scale = None if kind == "f" else 2 ** (bits - 1)
    return dtype, match.group("shape") == "c", scale


def _sample_bytes(datatype):
    # Bytes of one sample of one channel in ``datatype``.
    dtype, complex_samples, _ = sample_dtype(datatype)
    return dtype.itemsize * (2 if complex_samples else 1)


def _check_room(what, data_path, size):
    # A recording of ``size`` bytes must fit in the free space of its
    # folder when it starts (OSError else): a bound given by
    # mistake is refused at once, not when the disk is full.
    folder = os.path.dirname(os.path.abspath(data_path))
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return  # (the folder is checked, and refused, where the file is made)
    if size > free:
        raise OSError(f"{what}: {_bytes_text(size)} of samples do not fit in the "
                      f"{_bytes_text(free)} free in {folder}")


def _bytes_text(size):
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6)):
        if size >= scale:
            return f"{size / scale:.3g} {unit}"
    return f"{size} bytes"


@register(remote=False)
class record_block(Sink):
    """
    Writes its input (IQ or real samples) to a SigMF recording.

    :param path: the recording's name; ``.sigmf-data`` and ``.sigmf-meta``
        are written beside each other.
    :param datatype: ``"cf32_le"`` (the default: lossless for any input) or ``"ci16_le"``
        (full scale = 32768; lossless for 14- and 16-bit instrument
        samples, clipped and counted otherwise); ``rf32_le``/``ri16_le`` for
        real input.
    :param samples: stop after this many samples (``None``: at end of
        stream).
    :param description: ``core:description``.
    :param author: ``core:author``.

    A new capture starts at the first sample, after any gap in device time
    and whenever the centre frequency or the chunk meta changes; gaps are
    also annotated.  The meta file is written when the stream ends, when
    ``samples`` is reached, or on :meth:`close`.
    """

    type_name = "record_block"
    param_rules = {"samples": Param("count", minimum=1)}
    requires = (ISampleProducer,)

    def __init__(self, producer, path, datatype=None, samples=None, description="",
                 author=None, **kwargs):
        self._configure((producer,), path, datatype, samples, description, author, None)
        super().__init__(producer, **kwargs)

    def _configure(self, producers, path, datatype, samples, description, author, names):
        what = self.type_name
        kinds = {producer.kind if hasattr(producer, "kind") else "iq" for producer in producers}
        if len(kinds) > 1:
            raise ValueError(f"{what}: every channel must be of one kind, got "
                             f"{', '.join(sorted(kinds))}")
        complex_input = kinds.pop() == "iq"
        datatype = datatype or (SAMPLE_FORMAT if complex_input else "r" + SAMPLE_FORMAT[1:])
        if datatype not in WRITE_DATATYPES:
            raise ValueError(f"{what}: datatype {datatype!r} cannot be written; "
                             f"use one of {', '.join(WRITE_DATATYPES)}")
        if (datatype[0] == "c") != complex_input:
            raise ValueError(f"{what}: datatype {datatype!r} does not match "
                             f"{'iq' if complex_input else 'real'} input")
        if samples is not None and (not isinstance(samples, int) or samples < 1):
            raise ValueError(f"{what}: samples must be a positive integer, got {samples!r}")
        if names is not None:
            names = [str(name) for name in names]
            if len(names) != len(producers) or len(set(names)) != len(names) or not all(names):
                raise ValueError(f"{what}: names must give each of the {len(producers)} "
                                 f"channels a different, non-empty name, got {names!r}")
        self.datatype = datatype
        self.path = os.fspath(path)
        self.meta_path, self.data_path = check_recording_path(path, what)
        if samples is not None:
            _check_room(what, self.data_path, samples * len(producers) * _sample_bytes(datatype))
        self.limit = samples
        self.samples = samples
        self.description = description
        self.author = author
        self.channels = len(producers)
        self.channel_names = self.names = names
        self._file = None

    def reset(self):
        if self._file is not None:
            self._file.close()
        # The data file is made with the first sample: a run that records
        # nothing (an analyzer that cannot be reached) leaves no empty file.
        self._file = None
        self.samples_written = 0
        self.clipped = 0
        self.captures = []
        self.annotations = []
        self.sample_rate = None
        self._expected = None
        self._meta = None
        self._global_extra = {}
        self.written = False

    def annotate(self, sample_start, sample_count, label, comment=None):
        """
        Add an annotation over ``sample_count`` samples from
        ``sample_start`` (sample indices in the recording).
        """
        annotation = {"core:sample_start": int(sample_start),
                      "core:sample_count": int(sample_count), "core:label": str(label)}
        if comment:
            annotation["core:comment"] = str(comment)
        self.annotations.append(annotation)

    def compute(self, *chunks):
        if self.written:
            return
        chunk = chunks[0]
        if len(chunks) > 1 and len({len(c.data) for c in chunks}) > 1:
            raise ValueError(f"{self.type_name} {self.name!r}: channels of different "
                             f"rates ({', '.join(f'{c.rate:g}' for c in chunks)} Sa/s); a "
                             "SigMF recording holds one rate")
        if self.sample_rate is None:
            self.sample_rate = chunk.rate
            for key, name in (("identity", "core:hw"), ("instrument", "core:hw")):
                if key in chunk.meta and "core:hw" not in self._global_extra:
                    self._global_extra[name] = str(chunk.meta[key])
        elif chunk.rate != self.sample_rate:
            raise ValueError(f"{self.type_name} {self.name!r}: sample rate changed from "
                             f"{self.sample_rate:g} to {chunk.rate:g} Sa/s; a SigMF "
                             "recording holds one rate")
        broken = self._expected is not None and not continues(
            self._expected, chunk.start, chunk.rate)
        if broken:
            missing = chunk.start - self._expected
            self.annotate(self.samples_written, 0, "gap",
                          f"{missing} ns of device time missing before this sample")
        if (self._expected is None or broken
                or chunk.meta is not self._meta and chunk.meta != self._meta):
            self._new_capture(chunks)
        self._expected = chunk.end
        self._meta = chunk.meta
        # Several channels are interleaved sample by sample (SigMF's layout).
        data = chunk.data if len(chunks) == 1 else np.stack([c.data for c in chunks], axis=1)
        if self.limit is not None:
            data = data[:self.limit - self.samples_written]
        self._write(data)
        if self.limit is not None and self.samples_written >= self.limit:
            self.write_meta()
            self.close()

    def _new_capture(self, chunks):
        chunk = chunks[0]
        capture = {"core:sample_start": self.samples_written,
                   "core:datetime": format_datetime(chunk.start),
                   "pyrf:meta": json.loads(json.dumps(chunk.meta, default=_json_value))}
        if len(chunks) > 1:
            capture["pyrf:channel_meta"] = [json.loads(json.dumps(c.meta, default=_json_value))
                                            for c in chunks]
        if "center_frequency" in chunk.meta:
            capture["core:frequency"] = float(chunk.meta["center_frequency"])
        self.captures.append(capture)

    def _write(self, data):
        if self.datatype.endswith("i16_le"):
            values = data.view(np.float32) if np.iscomplexobj(data) else data
            scaled = np.rint(values * np.float32(32768.0))
            clipped = np.count_nonzero((scaled > 32767) | (scaled < -32768))
            if clipped:
                if not self.clipped:
                    log.warn("{block}: samples beyond full scale clipped in {path}",
                             block=f"{self.type_name} {self.name!r}", path=self.data_path)
                self.clipped += int(clipped)
                np.clip(scaled, -32768, 32767, out=scaled)
            raw = scaled.astype("<i2")
        else:
            raw = np.ascontiguousarray(data, "<c8" if self.datatype[0] == "c" else "<f4")
        if self._file is None:
            self._file = open(self.data_path, "wb")
        self._file.write(memoryview(raw).cast("B"))
        self.samples_written += len(data)

    def write_meta(self):
        """
        Finish the data file and write the meta file (validated by the
        ``sigmf`` package).
        """
        if self.written:
            return
        self.written = True
        if self._file is not None:
            self._file.close()
        if self.sample_rate is None:
            log.warn("{block}: nothing was recorded, so {path} was not written",
                     block=f"{self.type_name} {self.name!r}", path=self.data_path)
            return
        global_info = {
            "core:datatype": self.datatype,
            "core:sample_rate": float(self.sample_rate),
            "core:recorder": "pyrf_blocks",
            "core:num_channels": self.channels,
            # pyrf:meta (the chunk meta of each capture) is ours, and optional.
            "core:extensions": [{"name": "pyrf", "version": "1.0.0", "optional": True}],
        }
        if self.channel_names:
            global_info["pyrf:channels"] = list(self.channel_names)
        if self.description:
            global_info["core:description"] = self.description
        if self.author:
            global_info["core:author"] = self.author
        global_info.update(self._global_extra)
        import sigmf  # imported when needed: it takes a while to load

        meta = sigmf.SigMFFile(global_info=global_info, skip_checksum=True)
        for capture in self.captures:
            fields = dict(capture)
            meta.add_capture(fields.pop("core:sample_start"), metadata=fields)
        for annotation in self.annotations:
            fields = dict(annotation)
            meta.add_annotation(fields.pop("core:sample_start"),
                                fields.pop("core:sample_count"), metadata=fields)
        _validate_sigmf(meta)
        with open(self.meta_path, "w", encoding="utf-8") as out:
            meta.dump(out, pretty=True)

    def flush(self):
        self.write_meta()

    def close(self):
        # In the reactor's thread, so that no chunk is written after the meta.
        self.graph.in_reactor_thread(self._write_meta_and_close)

    def _write_meta_and_close(self):
        self.write_meta()
        super().close()


@register(remote=False)
class record_channels(record_block):
    """
    Writes several synchronised streams of one rate (V and I, four
    channels of a power analyser) to one multi-channel SigMF recording,
    interleaved sample by sample; replay a channel with
    ``sigmf_source(path, channel="V")``.

    :param path: the recording's name.
    :param names: a name per channel (``["V", "I"]``), stored as
        ``pyrf:channels``; by default the names of the blocks recorded, so
        that ``pyrf-blocks replay`` finds each source's channel.
    :param datatype: as :class:`record_block`'s (one for every channel).
    :param samples: stop after this many samples per channel.
    :param description: ``core:description``.
    :param author: ``core:author``.
    """

    type_name = "record_channels"
    variadic = True
    param_units = {"samples": "count"}

    def __init__(self, *producers, path, names=None, datatype=None, samples=None,
                 description="", author=None, **kwargs):
        if names is None:
            names = [getattr(producer, "name", str(index))
                     for index, producer in enumerate(producers)]
        self._configure(producers, path, datatype, samples, description, author, names)
        Sink.__init__(self, *producers, **kwargs)


def recording_channels(path):
    """
    The channel names of a SigMF recording: ``pyrf:channels`` where
    :class:`record_channels` wrote them, else ``["0", "1", ...]``.
    """
    meta_path, _ = sigmf_paths(path)
    try:
        with open(meta_path, encoding="utf-8") as source:
            info = json.load(source).get("global", {})
    except (OSError, ValueError, AttributeError) as error:
        raise ValueError(f"cannot read {meta_path}: {error}") from None
    count = info.get("core:num_channels", 1)
    names = info.get("pyrf:channels")
    if not isinstance(names, list) or len(names) != count:
        names = [str(index) for index in range(count)]
    return [str(name) for name in names]


@register(remote=False)
@implementer(IStateful)
class sigmf_source(PolledSource):
    """
    Replays one channel of a SigMF recording (any ``[cr][fiu](8|16|32|64)``
    datatype) as IQ (complex datatypes) or real samples, as fractions of
    full scale.

    :param path: the recording's name (``.sigmf-meta`` beside
        ``.sigmf-data``).
    :param chunk_size: samples per chunk; a chunk never spans two captures.
    :param paced: keep to device time, or run as fast as the consumers
        allow (the default).
    :param reference_level: dBm of full scale when the recording does not
        say (recordings made by other tools); 0 dBm if ``None``.
    :param channel: of a multi-channel recording, the channel to play: its
        name (``pyrf:channels``) or its number from 0.

    Each capture starts at its ``core:datetime`` (or where the previous
    capture ended); its chunks carry the recorded ``pyrf:meta`` when
    present, else ``center_frequency``, ``sample_rate`` and
    ``reference_level`` built from the SigMF fields.
    """

    type_name = "sigmf_source"
    param_rules = {"chunk_size": Param("count", minimum=1, maximum=1 << 24),
                   "reference_level": Param("dBm")}

    def __init__(self, path, chunk_size=65536, paced=False, reference_level=None,
                 channel=None, **kwargs):
        self.meta_path, self.data_path = sigmf_paths(path)
        self.channel = channel
        self.chunk_size = chunk_size
        self.default_reference_level = reference_level
        self._load()
        super().__init__(paced=paced, **kwargs)

    def output_kind(self):
        return "iq" if self.complex else "real"

    def _load(self):
        try:
            with open(self.meta_path, encoding="utf-8") as source:
                metadata = json.load(source)
        except (OSError, ValueError) as error:
            raise ValueError(f"sigmf_source: cannot read {self.meta_path}: {error}") from None
        import sigmf

        try:
            _validate_sigmf(sigmf.SigMFFile(metadata=metadata, skip_checksum=True))
        except Exception as error:
            raise ValueError(f"sigmf_source: {self.meta_path} is not valid SigMF: "
                             f"{error}") from None
        info = metadata["global"]
        self.datatype = info["core:datatype"]
        try:
            self._dtype, self.complex, self._scale = sample_dtype(self.datatype)
        except ValueError as error:
            raise ValueError(f"sigmf_source: {self.meta_path}: {error}") from None
        self.channel_count = int(info.get("core:num_channels", 1))
        self.channel_names = recording_channels(self.meta_path)
        self.channel_index = self._channel_index()
        self.sample_rate = float(info.get("core:sample_rate") or 0.0)
        if not self.sample_rate > 0:
            raise ValueError(f"sigmf_source: {self.meta_path} has no core:sample_rate")
        self.global_info = info
        self.annotations = metadata.get("annotations", [])
        self.captures = sorted(metadata.get("captures") or [{"core:sample_start": 0}],
                               key=lambda capture: capture.get("core:sample_start", 0))
        components = 2 if self.complex else 1
        width = self._dtype.itemsize * components * self.channel_count
        header = info.get("core:header_bytes", 0)
        size = os.path.getsize(self.data_path) if os.path.exists(self.data_path) else None
        if size is None:
            raise ValueError(f"sigmf_source: data file {self.data_path} is missing")
        self.sample_count = max(0, (size - header) // width)
        if (size - header) % width:
            log.warn("sigmf_source: {path} ends with {count} bytes that are not a "
                     "whole sample; ignored", path=self.data_path,
                     count=(size - header) % width)
        row = components * self.channel_count
        self._data = (np.memmap(self.data_path, self._dtype, "r", offset=header,
                                shape=(self.sample_count, row))
                      if self.sample_count else np.zeros((0, row), self._dtype))
        first = self.channel_index * components
        self._columns = slice(first, first + components)

    def _channel_index(self):
        names, channel = self.channel_names, self.channel
        if channel is None:
            if len(names) == 1:
                return 0
            raise ValueError(f"sigmf_source: {self.meta_path} has {len(names)} channels "
                             f"({', '.join(names)}); choose one with channel=")
        if isinstance(channel, str) and channel in names:
            return names.index(channel)
        if isinstance(channel, int) and not isinstance(channel, bool) \
                and 0 <= channel < len(names):
            return channel
        raise ValueError(f"sigmf_source: {self.meta_path} has no channel {channel!r}; "
                         f"its channels: {', '.join(names)}")

    @property
    def samples_read(self):
        """
        Samples (of the channel) emitted so far.
        """
        return self._position

    def _capture_meta(self, capture):
        channel_meta = capture.get("pyrf:channel_meta")
        if isinstance(channel_meta, list) and len(channel_meta) == self.channel_count:
            return dict(channel_meta[self.channel_index])
        if "pyrf:meta" in capture:
            return dict(capture["pyrf:meta"])
        reference = self.default_reference_level
        meta = {"sample_rate": self.sample_rate,
                "reference_level": 0.0 if reference is None else float(reference),
                "center_frequency": float(capture.get("core:frequency", 0.0))}
        return meta

    def reset(self):
        self._capture = 0
        self._position = 0
        self._begin_capture(None)

    # IStateful: where the replay is (a worker that takes it over goes on
    # from there in its own copy of the recording).

    def get_state(self):
        timebase = self._timebase
        return {"version": 1, "capture": self._capture, "position": self._position,
                "timebase": [timebase.origin_ns, timebase.rate, timebase.origin_index]}

    def set_state(self, state):
        check_version(self, state, 1)
        if not 0 <= state["position"] <= self.sample_count:
            raise ValueError(f"{self.label}: a state at sample {state['position']} of a "
                             f"recording of {self.sample_count}")
        self._capture, self._position = state["capture"], state["position"]
        self._begin_capture(None)
        self._timebase = Timebase(*state["timebase"])

    def _begin_capture(self, previous_end):
        if self._capture >= len(self.captures):
            return
        capture = self.captures[self._capture]
        self._position = max(self._position, int(capture.get("core:sample_start", 0)))
        stamp = capture.get("core:datetime")
        if stamp:
            origin = parse_datetime(stamp)
        else:
            origin = previous_end or 0
        self._timebase = Timebase(origin, self.sample_rate, self._position)
        self._meta = self._capture_meta(capture)
        following = self.captures[self._capture + 1:self._capture + 2]
        self._capture_end = (int(following[0].get("core:sample_start", 0)) if following
                             else self.sample_count)

    def _time_of(self, index):
        return self._timebase.time_of(index)

    def next_chunk(self):
        while self._position >= self._capture_end:
            if self._capture >= len(self.captures) or self._position >= self.sample_count:
                return None
            end = self._time_of(self._position)
            self._capture += 1
            self._begin_capture(end)
        first = self._position
        last = min(first + self.chunk_size, self._capture_end, self.sample_count)
        self._position = last
        raw = self._data[first:last, self._columns]
        values = raw.astype(np.float32)
        if self._scale is not None:
            if self._dtype.kind == "u":
                values -= np.float32(self._scale)
            values *= np.float32(1.0 / self._scale)
        data = values.view(np.complex64).reshape(-1) if self.complex else values.reshape(-1)
        return data, self._time_of(first), self._time_of(last), self.sample_rate, self._meta
