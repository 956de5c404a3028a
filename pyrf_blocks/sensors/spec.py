"""
Sensor pipeline files: the seed's YAML, read into a
:class:`~.pipeline.SensorPipeline`, every mistake reported with its line
and column (as block-graph pipeline files are, through
:mod:`pyrf_blocks.pipeline.problems`).

The sections keep the seed's names: ``active_period``, ``filters``,
``transformations``, ``processing_policy``, ``save_buffering``.  An option
that takes parameters (``multiplication``, ``round``, ``resize``,
``pixel_density``, ``clipping``) is either ``true`` with its parameters
beside it, or a mapping of its parameters; ``false`` or ``null`` turns it
off.  A choice with parameters (``type_value_filtering: whitelist`` and
``values``; ``compression: tgz`` and ``level``, ``wbits``) has them beside
it.  ``topics`` (or ``topic``) under ``pipeline`` names the MQTT topics;
without it the topic is the file's name without ``.yaml``.
"""

import copy
import datetime
import difflib
import os

from ..errors import FormulaError, PipelineError, UnitError
from ..numerics.formula import Formula
from ..pipeline.loader import load_document, read_document
from ..pipeline.problems import shown
from ..units import parse_quantity
from .filters import VALUE_TYPES, Filters
from .period import PERIOD_KINDS, ActivePeriod
from .pipeline import SensorPipeline
from .policies import MAX_RECORDS, Aggregation, LastValue, NRecords, TimeWindow, \
    VideoPolicy, window_grid
from .transforms import COMPRESSIONS, FORMULA_NAMES, FORMULA_TIMEOUT, IMAGE_FORMATS, \
    FileTransform, ImageTransform, NumericTransform

__all__ = ["read_sensor_pipeline", "load_sensor_pipeline", "parse_sensor_pipeline",
           "is_sensor_pipeline", "sensor_sections"]

_SECTIONS = ("topics", "topic", "active_period", "filters", "transformations",
             "processing_policy", "save_buffering")
_FILTERS = ("type_input_value", "type_value_filtering", "values", "type_value_threshold",
            "min", "max", "max_rate", "last_unique_check", "max_size")
_TRANSFORMS = {
    "numeric": ("type", "formula", "formula_timeout", "multiplication", "coefficient",
                "round", "decimal_point"),
    "image": ("type", "resize", "width", "hight", "height", "pixel_density", "dpi",
              "clipping", "x", "y", "format"),
    "file": ("type", "compression", "wbits", "level"),
}
_POLICIES = {
    "last_value": ("type", "file_ttl", "min_interval"),
    "n_records": ("type", "count_records"),
    "time_window": ("type", "start", "end", "expire_after"),
    "aggregation": ("type", "window_size", "aggregation_functions", "zone"),
    "video": ("type", "window_size", "frame_rate_per_second", "codec", "zone"),
}
_BUFFERING = ("max_items", "accumulation_time")


def is_sensor_pipeline(data):
    """
    Whether parsed YAML ``data`` is a sensor pipeline file (a ``pipeline``
    mapping at the top and no ``blocks``), not a block graph (which may
    hold sensor pipelines beside its blocks: :func:`sensor_sections`).
    """
    return isinstance(data, dict) and isinstance(data.get("pipeline"), dict) and \
        "blocks" not in data


class _Reader:
    def __init__(self, document):
        self.document = document
        self.problems = []

    def problem(self, message, path, key=False):
        self.problems.append(self.document.problem(message, path, key))

    def known(self, mapping, names, path, what):
        for key in mapping:
            if key not in names:
                close = difflib.get_close_matches(str(key), names, 1)
                hint = f"; did you mean {close[0]!r}?" if close else \
                    f"; {what} takes: {', '.join(names)}"
                self.problem(f"unknown option {key!r} in {what}{hint}", path + (key,), key=True)

    def mapping(self, value, path, what):
        if value is None:
            return {}
        if not isinstance(value, dict):
            self.problem(f"{what} must be a mapping of options, not {shown(value)}", path)
            return {}
        return value

    def choice(self, mapping, key, choices, path, default=None):
        value = mapping.get(key, default)
        if value is None or value in choices:
            return value
        self.problem(f"{key}: {shown(value)} is not one of {', '.join(map(str, choices))}",
                     path + (key,))
        return default

    def number(self, mapping, key, path, low=None, high=None, integer=False, default=None):
        value = mapping.get(key, default)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or \
                (integer and not isinstance(value, int)):
            self.problem(f"{key}: {shown(value)} is not a{' whole' if integer else ''} number",
                         path + (key,))
            return default
        if (low is not None and value < low) or (high is not None and value > high):
            self.problem(f"{key}: {value} is outside {low}..{high}", path + (key,))
            return default
        return value

    def duration(self, mapping, key, path, low=None, high=None, default=None):
        value = mapping.get(key, default)
        if value is None or value == default:
            return value
        try:
            seconds = parse_quantity(value, "s", key)
        except UnitError as error:
            self.problem(str(error), path + (key,))
            return default
        if (low is not None and seconds < low) or (high is not None and seconds > high):
            self.problem(f"{key}: {shown(value)} is outside {low:g} s..{high:g} s",
                         path + (key,))
            return default
        return seconds

    def date(self, mapping, key, path):
        value = mapping.get(key)
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = datetime.datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                self.problem(f"{key}: {shown(value)} is not a date-time "
                             "(2023-11-15T00:00:00Z)", path + (key,))
                return None
        if isinstance(value, datetime.date) and not isinstance(value, datetime.datetime):
            value = datetime.datetime(value.year, value.month, value.day)
        if not isinstance(value, datetime.datetime):
            self.problem(f"{key}: {shown(value)} is not a date-time", path + (key,))
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return int(value.timestamp()) * 10 ** 9 + value.microsecond * 1000

    def option(self, mapping, key, names, path):
        """
        An option with parameters: None when off, else ``{param: value}``
        from its own mapping or from beside it.
        """
        value = mapping.get(key)
        if value is None or value is False:
            return None, path
        if value is True:
            return {n: mapping[n] for n in names if n in mapping}, path
        if isinstance(value, dict):
            self.known(value, names, path + (key,), key)
            return value, path + (key,)
        self.problem(f"{key}: {shown(value)}: write true with its parameters beside it, "
                     "or a mapping of them", path + (key,))
        return None, path


def _sequence(reader, value, path, what):
    if value is None:
        return []
    if isinstance(value, dict):
        return [(path, value)]
    if not isinstance(value, list):
        reader.problem(f"{what} must be a list, not {shown(value)}", path)
        return []
    return [(path + (index,), item) for index, item in enumerate(value)]


def load_sensor_pipeline(document, name=None):
    """
    A :class:`~.pipeline.SensorPipeline` from a parsed
    :class:`~pyrf_blocks.pipeline.loader.Document`.

    :raises PipelineError: listing every problem with its line and column.
    """
    reader = _Reader(document)
    data = document.data
    if not isinstance(data, dict):
        raise PipelineError([document.problem("a sensor pipeline file is a mapping with "
                                              "'version' and 'pipeline'")])
    reader.known(data, ("version", "pipeline"), (), "the file")
    version = data.get("version")
    if version is None:
        reader.problem("missing 'version' (write version: 1.0)", ())
    elif str(version) not in ("1", "1.0"):
        reader.problem(f"version {shown(version)}: this reader knows version 1.0",
                       ("version",))
    name = name or _file_name(document)
    pipeline = _stages(reader, data.get("pipeline"), ("pipeline",), name)
    if reader.problems:
        raise PipelineError(reader.problems)
    return pipeline


def _file_name(document):
    return os.path.splitext(os.path.basename(document.filename))[0]


def sensor_sections(document):
    """
    The sensor pipelines written beside a block graph in one file:
    ``pipeline`` (one, named after the file) and ``pipelines`` (a mapping
    of name to stages), as ``({name: SensorPipeline}, problems)``; each
    problem (a :class:`~pyrf_blocks.pipeline.problems.Problem`) has its
    line and column.  Each call makes new pipelines (their state is their
    own).
    """
    reader = _Reader(document)
    data = document.data if isinstance(document.data, dict) else {}
    found = {}
    if data.get("pipeline") is not None:
        name = _file_name(document)
        found[name] = _stages(reader, data["pipeline"], ("pipeline",), name)
    named = reader.mapping(data.get("pipelines"), ("pipelines",), "pipelines")
    for name, spec in named.items():
        if not isinstance(name, str) or not name:
            reader.problem(f"pipelines: {shown(name)} is not a name", ("pipelines", name),
                           key=True)
            continue
        if name in found:
            reader.problem(f"pipelines: {name!r} is the name of the file's 'pipeline' too",
                           ("pipelines", name), key=True)
            continue
        found[name] = _stages(reader, spec, ("pipelines", name), name)
    return found, reader.problems


def _stages(reader, spec, base, name):
    """
    The :class:`~.pipeline.SensorPipeline` of the stages mapping ``spec``
    written at ``base``; problems go to ``reader`` (the result is then
    not to be used).
    """
    what = "pipeline" if base == ("pipeline",) else f"sensor pipeline {name!r}"
    spec = reader.mapping(spec, base, what)
    reader.known(spec, _SECTIONS, base, what)

    topics = spec.get("topics", spec.get("topic", name))
    topics = [topics] if isinstance(topics, str) else topics
    if not isinstance(topics, list) or not topics or \
            not all(isinstance(t, str) and t for t in topics):
        reader.problem(f"topics: {shown(topics)} is not a list of MQTT topics", base + ("topics",))
        topics = [name]
    for index, topic in enumerate(topics):
        if "+" in topic or "#" in topic:
            reader.problem(f"topic {topic!r}: name each topic; wildcards are not supported",
                           base + ("topics", index))

    # Active period.
    path = base + ("active_period",)
    section = reader.mapping(spec.get("active_period"), path, "active_period")
    reader.known(section, ("type", "start", "end"), path, "active_period")
    kind = reader.choice(section, "type", PERIOD_KINDS, path, "permanent")
    period = None
    try:
        period = ActivePeriod(kind, reader.date(section, "start", path),
                              reader.date(section, "end", path))
    except ValueError as error:
        reader.problem(str(error), path)

    # Filters.
    path = base + ("filters",)
    section = reader.mapping(spec.get("filters"), path, "filters")
    reader.known(section, _FILTERS, path, "filters")
    value_type = reader.choice(section, "type_input_value", VALUE_TYPES + ("binary",), path,
                               "number")
    listing = reader.choice(section, "type_value_filtering", ("whitelist", "blacklist"), path)
    values = section.get("values")
    if listing is not None and not isinstance(values, list):
        reader.problem(f"type_value_filtering: {listing} needs 'values', a list", path)
        values = []
    threshold = reader.choice(section, "type_value_threshold", ("min", "max", "range"), path)
    minimum = reader.number(section, "min", path) if threshold in ("min", "range") else None
    maximum = reader.number(section, "max", path) if threshold in ("max", "range") else None
    if threshold == "range" and None in (minimum, maximum):
        reader.problem("type_value_threshold: range needs min and max", path)
    elif threshold == "min" and minimum is None or threshold == "max" and maximum is None:
        reader.problem(f"type_value_threshold: {threshold} needs {threshold}", path)
    if threshold == "range" and None not in (minimum, maximum) and minimum > maximum:
        reader.problem(f"min {minimum} is above max {maximum}", path + ("min",))
    unique = section.get("last_unique_check", False)
    if not isinstance(unique, bool):
        reader.problem(f"last_unique_check: {shown(unique)} is not true or false",
                       path + ("last_unique_check",))
    filters = Filters(
        value_type or "number",
        whitelist=values if listing == "whitelist" else None,
        blacklist=values if listing == "blacklist" else None,
        minimum=minimum, maximum=maximum,
        max_rate=reader.duration(section, "max_rate", path, 0.001, 366 * 86400.0),
        unique=unique is True,
        max_size=reader.number(section, "max_size", path, 1, None, integer=True))

    # Transformations.
    transforms = []
    for path, item in _sequence(reader, spec.get("transformations"),
                                base + ("transformations",), "transformations"):
        item = reader.mapping(item, path, "a transformation")
        kind = reader.choice(item, "type", tuple(_TRANSFORMS), path)
        if kind is None:
            if "type" not in item:
                reader.problem("a transformation needs a type: numeric, image or file", path)
            continue
        reader.known(item, _TRANSFORMS[kind], path, f"a {kind} transformation")
        try:
            transforms.append(_transform(reader, kind, item, path))
        except ValueError as error:
            reader.problem(str(error), path)

    # Policies.
    policies = []
    for path, item in _sequence(reader, spec.get("processing_policy"),
                                base + ("processing_policy",), "processing_policy"):
        item = reader.mapping(item, path, "a policy")
        kind = reader.choice(item, "type", tuple(_POLICIES), path)
        if kind is None:
            if "type" not in item:
                reader.problem(f"a policy needs a type: {', '.join(_POLICIES)}", path)
            continue
        reader.known(item, _POLICIES[kind], path, f"a {kind} policy")
        try:
            policies.append(_policy(reader, kind, item, path))
        except ValueError as error:
            reader.problem(str(error), path)
    kinds = [p.table for p in policies]
    for table in set(kinds):
        if kinds.count(table) > 1:
            reader.problem(f"processing_policy lists {table} twice", base + ("processing_policy",))

    # Buffering.
    path = base + ("save_buffering",)
    buffering = {}
    for item_path, item in _sequence(reader, spec.get("save_buffering"), path, "save_buffering"):
        item = reader.mapping(item, item_path, "save_buffering")
        reader.known(item, _BUFFERING, item_path, "save_buffering")
        for key in item:
            if key in buffering:
                reader.problem(f"save_buffering: {key} is given twice", item_path + (key,))
            buffering[key] = (item_path, item)
    max_items = 1024
    accumulation = 60.0
    if "max_items" in buffering:
        item_path, item = buffering["max_items"]
        max_items = reader.number(item, "max_items", item_path, 1, 2048, integer=True,
                                  default=max_items)
    if "accumulation_time" in buffering:
        item_path, item = buffering["accumulation_time"]
        accumulation = reader.duration(item, "accumulation_time", item_path, 0.001,
                                       366 * 86400.0, default=accumulation)

    pipeline = SensorPipeline(name, topics, filters, transforms, policies, period,
                              max_items=max_items, accumulation_time=accumulation)
    pipeline.spec = copy.deepcopy(spec)
    return pipeline


def _transform(reader, kind, item, path):
    if kind == "numeric":
        scale, scale_path = reader.option(item, "multiplication", ("coefficient",), path)
        rounding, round_path = reader.option(item, "round", ("decimal_point",), path)
        coefficient = None
        if scale is not None:
            coefficient = reader.number(scale, "coefficient", scale_path)
            if coefficient is None:
                reader.problem("multiplication needs a coefficient", scale_path)
        places = None
        if rounding is not None:
            places = reader.number(rounding, "decimal_point", round_path, 0, 15, integer=True)
            if places is None:
                reader.problem("round needs decimal_point", round_path)
        return NumericTransform(coefficient, places, _formula(reader, item, path))
    if kind == "image":
        size = dpi = clip = None
        resize, resize_path = reader.option(item, "resize", ("width", "hight", "height"), path)
        if resize is not None:
            size = (reader.number(resize, "width", resize_path, 1, 65535, integer=True),
                    reader.number(resize, "hight", resize_path, 1, 65535, integer=True,
                                  default=resize.get("height")))
            if None in size:
                reader.problem("resize needs width and hight", resize_path)
        density, density_path = reader.option(item, "pixel_density", ("dpi",), path)
        if density is not None:
            dpi = reader.number(density, "dpi", density_path, 1, 10000)
            if dpi is None:
                reader.problem("pixel_density needs dpi", density_path)
        clipping, clip_path = reader.option(item, "clipping",
                                            ("x", "y", "width", "hight", "height"), path)
        if clipping is not None:
            clip = tuple(reader.number(clipping, key, clip_path, 0, 65535, integer=True)
                         for key in ("x", "y", "width"))
            clip += (reader.number(clipping, "hight", clip_path, 1, 65535, integer=True,
                                   default=clipping.get("height")),)
            if None in clip:
                reader.problem("clipping needs x, y, width and hight", clip_path)
        image_format = item.get("format")
        if image_format is not None and image_format not in IMAGE_FORMATS:
            reader.problem(f"format: {shown(image_format)} is not one of "
                           f"{', '.join(IMAGE_FORMATS)} (Pillow writes no SVG)",
                           path + ("format",))
            image_format = None
        return ImageTransform(size if size and None not in size else None, dpi,
                              clip if clip and None not in clip else None, image_format)
    compression = reader.choice(item, "compression", COMPRESSIONS, path)
    level = reader.number(item, "level", path, 0, 9, integer=True, default=6)
    wbits = reader.number(item, "wbits", path, 9, 15, integer=True, default=15)
    if compression is None:
        return _NoTransform()
    return FileTransform(compression, level, wbits)


def _formula(reader, item, path):
    """
    The checked formula of a numeric transformation, or None; a mistake is
    a problem at the YAML value that names the column inside the formula.
    """
    text = item.get("formula")
    timeout = reader.duration(item, "formula_timeout", path, 1e-6, 10.0,
                              default=FORMULA_TIMEOUT)
    if text is None:
        return None
    if not isinstance(text, str):
        reader.problem(f"formula: {shown(text)} is not a formula; write it as text, "
                       "e.g. formula: \"value * 1.8 + 32\"", path + ("formula",))
        return None
    try:
        return Formula(text, FORMULA_NAMES, timeout=timeout)
    except FormulaError as error:
        # The problem points at the YAML value; the message gives the
        # column inside the formula.
        reader.problem(str(error), path + ("formula",))
        return None


class _NoTransform:
    kind = "file"

    def apply(self, value, topic, time):
        return value


def _policy(reader, kind, item, path):
    if kind == "last_value":
        return LastValue(reader.duration(item, "min_interval", path, 0, 366 * 86400.0,
                                         default=0.0),
                         reader.duration(item, "file_ttl", path, 1, 3650 * 86400.0))
    if kind == "n_records":
        return NRecords(reader.number(item, "count_records", path, 1, MAX_RECORDS,
                                      integer=True, default=1024))
    if kind == "time_window":
        return TimeWindow(reader.date(item, "start", path), reader.date(item, "end", path),
                          reader.duration(item, "expire_after", path, 1, 3650 * 86400.0))
    if kind == "aggregation":
        functions = item.get("aggregation_functions", "avg")
        functions = [functions] if isinstance(functions, str) else functions
        if not isinstance(functions, list) or not all(f in Aggregation.FUNCTIONS
                                                      for f in functions):
            reader.problem(f"aggregation_functions: {shown(functions)}; of "
                           f"{', '.join(Aggregation.FUNCTIONS)}",
                           path + ("aggregation_functions",))
            functions = ["avg"]
        window, zone = _calendar(reader, item, path)
        return Aggregation(window, functions, zone)
    rate = item.get("frame_rate_per_second", "dynamic")
    if rate != "dynamic" and (isinstance(rate, bool) or not isinstance(rate, (int, float))
                              or not 0 < rate <= 240):
        reader.problem(f"frame_rate_per_second: {shown(rate)}; dynamic or frames per second",
                       path + ("frame_rate_per_second",))
        rate = "dynamic"
    window, zone = _calendar(reader, item, path)
    return VideoPolicy(window, rate, str(item.get("codec", "H.264/AVC")), zone=zone)


def _calendar(reader, item, path):
    """
    ``(window_size seconds, zone)`` of an aggregation or video policy,
    each checked where it is written (a size that does not divide a day,
    a zone that is not an IANA name).
    """
    window = reader.duration(item, "window_size", path, 60, 43200, default=3600.0)
    zone = item.get("zone", "UTC")
    if not isinstance(zone, str):
        reader.problem(f"zone: {shown(zone)} is not a time zone name such as "
                       "'Europe/Berlin'", path + ("zone",))
        zone = "UTC"
    try:
        window_grid(window, "UTC")
    except ValueError as error:
        reader.problem(str(error), path + ("window_size",))
        window = 3600.0
    try:
        window_grid(window, zone)
    except ValueError as error:
        reader.problem(f"zone: {error}", path + ("zone",))
        zone = "UTC"
    return window, zone


def read_sensor_pipeline(path):
    """
    The :class:`~.pipeline.SensorPipeline` of the file at ``path``.

    :raises PipelineError: listing every problem with its line and column.
    """
    return load_sensor_pipeline(read_document(path))


def parse_sensor_pipeline(text, filename="<pipeline>"):
    """
    The :class:`~.pipeline.SensorPipeline` written in ``text``.
    """
    return load_sensor_pipeline(load_document(text, filename))
