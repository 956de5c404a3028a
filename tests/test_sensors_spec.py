"""
Sensor pipeline files: the seed's example is accepted as written (indentation
fixed, names kept), and every mistake is reported with its line and column.
"""

import os
import textwrap

import pytest

from pyrf_blocks.errors import PipelineError
from pyrf_blocks.sensors.policies import Aggregation, LastValue, NRecords, TimeWindow, VideoPolicy
from pyrf_blocks.sensors.spec import parse_sensor_pipeline, read_sensor_pipeline
from pyrf_blocks.sensors.transforms import NumericTransform

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = os.path.join(ROOT, "examples", "sensor_pipeline.yaml")
S = 10 ** 9


def problems_of(text):
    with pytest.raises(PipelineError) as caught:
        parse_sensor_pipeline(textwrap.dedent(text), "p.yaml")
    return [(p.line, p.column, p.message) for p in caught.value.problems]


def test_the_seed_example_is_accepted():
    """examples/sensor_pipeline.yaml reads into the stages and options it writes."""
    pipeline = read_sensor_pipeline(EXAMPLE)
    assert pipeline.topics == ("sensor_pipeline",) and pipeline.kind == "number"
    assert pipeline.period.kind == "date_range" and pipeline.period.start == 1700006400 * S
    f = pipeline.filters
    assert (f.whitelist, f.minimum, f.maximum, f.max_rate_ns, f.unique, f.max_size) == \
        ([1.0, 2.0, 3.0, 4.0, 5.0], -40, 120, 10 * S, False, 10)
    [numeric] = pipeline.transforms  # the image and file ones do not apply to numbers
    assert isinstance(numeric, NumericTransform) and numeric.coefficient == 0.3
    assert [type(p) for p in pipeline.policies] == [LastValue, NRecords, TimeWindow,
                                                    Aggregation, VideoPolicy]
    assert pipeline.policies[3].window_ns == 3600 * S
    assert (pipeline.max_items, pipeline.accumulation_time) == (10, 300.0)


def test_the_seed_as_written_fails_at_its_bad_indentation():
    """The seed's original text (options indented under scalars) is a YAML error with its line."""
    text = "version: 1.0\npipeline:\n  filters:\n    type_value_filtering: \"whitelist\"\n" \
           "        values: [1,2,3,4,5]\n"
    [(line, column, message)] = problems_of(text)
    assert line == 5 and message.startswith("YAML syntax")


def test_mistakes_are_reported_with_line_and_column():
    """Unknown options (with a suggestion), bad choices, ranges and units each point at their line."""
    found = problems_of("""\
        version: 1.0
        pipeline:
          topics: [plant/1]
          filters:
            type_input_value: "numbr"
            max_rate: "10 parsecs"
            max_siz: 10
          transformations:
            - type: "image"
              format: svg
          processing_policy:
            - type: "n_records"
              count_records: 9000
            - type: "aggregation"
              window_size: "13h"
          save_buffering:
            - max_items: 0
        """)
    assert [(line, column) for line, column, _ in found] == \
        [(5, 23), (6, 15), (7, 5), (10, 15), (13, 22), (15, 20), (17, 18)]
    messages = "\n".join(m for _, _, m in found)
    assert "'numbr' is not one of number, text, image, file" in messages
    assert "did you mean 'max_size'?" in messages
    assert "Pillow writes no SVG" in messages
    assert "count_records: 9000 is outside 1..8192" in messages
    assert "window_size: '13h' is outside 60 s..43200 s" in messages


def test_options_as_flags_or_mappings_and_buffering_as_mapping():
    """An option may be true with its parameters beside it, and save_buffering a plain mapping."""
    pipeline = parse_sensor_pipeline(textwrap.dedent("""\
        version: 1
        pipeline:
          topic: plant/1
          transformations:
            - type: numeric
              multiplication: true
              coefficient: 2
              round: true
              decimal_point: 1
          processing_policy:
            - {type: last_value, min_interval: 30s}
          save_buffering: {max_items: 5, accumulation_time: 1m}
        """))
    assert pipeline.transforms[0].apply(1.234, "t", 0) == 2.5
    assert pipeline.policies[0].min_interval_ns == 30 * S
    assert (pipeline.topics, pipeline.max_items, pipeline.accumulation_time) == \
        (("plant/1",), 5, 60.0)


def test_a_formula_is_checked_at_load_with_its_column():
    """A formula's mistake points at the YAML value's line and column and names its own column."""
    pipeline = parse_sensor_pipeline(textwrap.dedent("""\
        version: 1.0
        pipeline:
          topic: oven/1
          transformations:
            - type: numeric
              formula: "value * 9 / 5 + 32"
              formula_timeout: 10ms
              round: {decimal_point: 1}
        """))
    [numeric] = pipeline.transforms
    assert numeric.formula.timeout == 0.01 and numeric.apply(36.66, "oven/1", 0) == 98.0
    found = problems_of("""\
        version: 1.0
        pipeline:
          transformations:
            - type: numeric
              formula: "value * 9 / 5 + tim"
            - type: numeric
              formula: "__import__('os')"
            - type: numeric
              formula: 3
              formula_timeout: 1h
        """)
    assert [(line, column) for line, column, _ in found] == [(5, 16), (7, 16), (9, 16), (10, 24)]
    assert "formula 'value * 9 / 5 + tim', column 17: unknown name 'tim'" in found[0][2]
    assert "column 1" in found[1][2]
    assert "formula: 3 is not a formula" in found[2][2]
    assert "formula_timeout: '1h' is outside" in found[3][2]


def test_validate_command_accepts_sensor_pipelines(capsys):
    """pyrf-blocks validate checks a sensor pipeline file as it does a block graph."""
    from pyrf_blocks.cli import main

    assert main(["validate", EXAMPLE]) == 0
    assert "valid sensor pipeline" in capsys.readouterr().out


def test_serve_pipelines_bad_arguments_are_one_line(tmp_path, capsys):
    """A bad --broker or a missing directory: one line on stderr, status 2, nothing started."""
    from pyrf_blocks.cli import main

    assert main(["serve-pipelines", str(tmp_path), "--broker", "nowhere"]) == 2
    assert main(["serve-pipelines", str(tmp_path / "none")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "HOST:PORT" in err[0] and "not a directory" in err[1]


def test_policy_zone_and_window_size_are_checked_at_load():
    """zone takes an IANA name (unknown: its line and column); a window_size must divide a day."""
    pipeline = parse_sensor_pipeline(textwrap.dedent("""\
        version: 1.0
        pipeline:
          topic: greenhouse/1
          processing_policy:
            - {type: aggregation, window_size: 12h, zone: Europe/Berlin}
        """))
    assert pipeline.policies[0].zone == "Europe/Berlin"
    found = problems_of("""\
        version: 1.0
        pipeline:
          processing_policy:
            - type: aggregation
              window_size: 7m
              zone: Mars/Olympus
            - type: video
              zone: 3
        """)
    assert [(line, column) for line, column, _ in found] == [(5, 20), (6, 13), (8, 13)]
    assert "420 s does not divide a day" in found[0][2]
    assert "unknown time zone 'Mars/Olympus'" in found[1][2]
    assert "zone: 3 is not a time zone name" in found[2][2]
