"""
Checking pipeline files: every mistake in one pass, each at its line and
column, and no side effects.
"""

import glob
import io
import os
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings, strategies as st
from ruamel.yaml import YAML
from zope.interface import implementer

from pyrf_blocks import registry
from pyrf_blocks.block import Block, Sink
from pyrf_blocks.interfaces import IIQProducer, ISpectrumProducer
from pyrf_blocks.pipeline import PipelineError, check_file, check_text

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
#: Block-graph pipeline files (sensor pipelines, with a top-level
#: ``pipeline:``, are tested by tests/test_sensors_spec.py).
EXAMPLES = sorted(path for path in glob.glob(os.path.join(ROOT, "examples", "*.yaml"))
                  if "\npipeline:" not in Path(path).read_text(encoding="utf-8"))


def problems_of(text):
    """The problems of a YAML text, as (line, column, message) tuples."""
    with pytest.raises(PipelineError) as caught:
        check_text(textwrap.dedent(text), "p.yaml")
    return [(p.line, p.column, p.message) for p in caught.value.problems]


def only_problem(text):
    found = problems_of(text)
    assert len(found) == 1, found
    return found[0]


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_examples_are_valid(path):
    """Every example pipeline file checks without a problem."""
    pipeline = check_file(path)
    assert pipeline.blocks and pipeline.sinks


def test_examples_cover_the_seed_scripts():
    """The seed's three scripts exist as files: one process, two processes, hosts."""
    kinds = {os.path.basename(path): {p.kind for p in check_file(path).processes.values()}
             for path in EXAMPLES}
    assert kinds["spectrum.yaml"] == {"local"}
    assert "child" in kinds["two_processes.yaml"]
    assert "remote" in kinds["distributed.yaml"]


BROKEN = """\
version: 1
processes:
  dsp: child
  lab: {url: "http://lab:8750", token: hunter2}
blocks:
  wsa:
    type: simulated_instrument
    params:
      center_frequency: 2.4Ghz
      tones: [[1MHz, -20dBm], [2MHz]]
      seed: "x"
  fft:
    type: fft_blok
    inputs: [wsa]
  fft2:
    type: fft_block
    inputs: [wsa]
    params: {sise: 3}
    proc: dps
  cal:
    type: calibrate_block
    inputs: [wsa]
  a:
    type: max_hold
    inputs: [b]
  b:
    type: min_hold
    inputs: [a]
  out:
    type: printer
    inputs: [fft2, cal]
    params: {stream: stderr, interval: 10 parsecs}
  out2:
    type: collector
    inputs: [out]
    policy: lates
    color: red
"""


def test_reports_every_mistake_in_one_pass():
    """One check lists every mistake of the file, in order, each at its position."""
    found = problems_of(BROKEN)
    expected = [
        (4, 33, "process 'lab': a literal token may not be written"),
        (9, 25, "block 'wsa' (simulated_instrument): center_frequency: '2.4Ghz' "
                "is not a frequency; write a number, optionally followed by one of: "
                "Hz, kHz, MHz, GHz"),
        (10, 14, "block 'wsa' (simulated_instrument): tones row 2: expected [Hz, dBm]"),
        (11, 13, "block 'wsa' (simulated_instrument): seed: expected an integer, got 'x'"),
        (13, 11, "block 'fft' (fft_blok): unknown block type 'fft_blok'; "
                 "did you mean 'fft_block'?"),
        (18, 14, "block 'fft2' (fft_block): unknown parameter 'sise'; did you mean 'size'?"),
        (19, 11, "block 'fft2' (fft_block): unknown process 'dps'; did you mean 'dsp'?"),
        (22, 14, "block 'cal' (calibrate_block): input 1 must provide ISpectrumProducer, "
                 "but block 'wsa' (simulated_instrument) provides IIQProducer"),
        (25, 13, "block 'a': blocks a -> b -> a form a cycle"),
        (31, 5, "block 'out' (printer): takes 1 input (IChunkProducer), got 2"),
        (32, 22, "block 'out' (printer): stream can only be given in Python"),
        (32, 40, "block 'out' (printer): interval: '10 parsecs' is not a duration"),
        (36, 13, "block 'out2' (collector): policy: 'lates' is not one of"),
        (37, 5, "block 'out2' (collector): unknown field 'color'"),
    ]
    assert len(found) == len(expected), found
    for (line, column, message), (want_line, want_column, want) in zip(found, expected):
        assert (line, column) == (want_line, want_column), (message, want)
        assert message.startswith(want), (message, want)


def test_messages_name_the_file_line_and_column():
    """Each problem reads FILE:LINE:COLUMN: message, as compilers write them."""
    with pytest.raises(PipelineError) as caught:
        check_text(BROKEN, "lab/pipeline.yaml")
    first = str(caught.value).splitlines()[0]
    assert first.startswith("lab/pipeline.yaml:4:33: process 'lab': ")


@pytest.fixture
def extra_types(monkeypatch):
    """Registers test-only block types for one test, and nothing after it."""

    made = []

    @implementer(IIQProducer)
    class gain_block(Block):
        """Multiplies IQ samples by ``gain`` (test only)."""
        type_name = "test_gain_block"
        kind = "iq"
        requires = (IIQProducer,)
        param_units = {"gain": "dB"}

        def __init__(self, producer, gain, **kwargs):
            super().__init__(producer, **kwargs)

    class counting_sink(Sink):
        """Records that it was made (test only)."""
        type_name = "test_counting_sink"
        requires = (ISpectrumProducer,)
        variadic = True

        def __init__(self, *producers, **kwargs):
            made.append(self)
            super().__init__(*producers, **kwargs)

        def compute_input(self, index, chunk):
            pass

    monkeypatch.setitem(registry._TYPES, gain_block.type_name, gain_block)
    monkeypatch.setitem(registry._TYPES, counting_sink.type_name, counting_sink)
    return made


def test_missing_required_parameter(extra_types):
    """A required parameter left out is reported at the block's params."""
    assert only_problem("""\
        version: 1
        blocks:
          wsa: {type: simulated_instrument}
          g:
            type: test_gain_block
            inputs: [wsa]
            params: {}
    """) == (7, 13, "block 'g' (test_gain_block): missing parameter 'gain'")
    pipeline = check_text(textwrap.dedent("""\
        version: 1
        blocks:
          wsa: {type: simulated_instrument}
          g: {type: test_gain_block, inputs: [wsa], params: {gain: -3dB}}
    """))
    assert pipeline.blocks["g"].params == {"gain": -3.0}


def test_checking_builds_nothing(extra_types):
    """Checking a file with a sink makes no block: no side effects, no graph."""
    pipeline = check_text(textwrap.dedent("""\
        version: 1
        blocks:
          wsa: {type: simulated_instrument}
          fft: {type: fft_block, inputs: wsa}
          view: {type: test_counting_sink, inputs: [fft, fft]}
    """))
    assert extra_types == []
    assert pipeline.blocks["view"].inputs == ("fft", "fft")


def test_variadic_block_needs_an_input(extra_types):
    """A block taking any number of inputs still needs one."""
    line, column, message = only_problem("""\
        version: 1
        blocks:
          view: {type: test_counting_sink}
    """)
    assert message == "block 'view' (test_counting_sink): needs at least one input"


def test_unknown_input_suggests_the_closest_block():
    """An input naming no block says so, with the closest block name."""
    assert only_problem("""\
        version: 1
        blocks:
          wsa: {type: simulated_instrument}
          fft: {type: fft_block, inputs: [wsa2]}
          out: {type: collector, inputs: [fft]}
    """) == (4, 35, "block 'fft' (fft_block): input 'wsa2' is not a block of this "
                    "file; did you mean 'wsa'?")


def test_pass_through_blocks_carry_their_input_kind():
    """decimate of IQ emits IQ: an FFT accepts it and a calibration does not."""
    line, column, message = only_problem("""\
        version: 1
        blocks:
          wsa: {type: simulated_instrument}
          slow: {type: decimate_block, inputs: [wsa], params: {factor: 4}}
          fft: {type: fft_block, inputs: [slow]}
          cal: {type: calibrate_block, inputs: [slow]}
          out: {type: collector, inputs: [fft]}
    """)
    assert (line, message) == (6, "block 'cal' (calibrate_block): input 1 must provide "
                                  "ISpectrumProducer, but block 'slow' (decimate_block) "
                                  "provides IIQProducer")


def test_a_sink_is_not_an_input():
    """Consuming a sink is refused: it produces nothing."""
    assert only_problem("""\
        version: 1
        blocks:
          wsa: {type: simulated_instrument}
          a: {type: collector, inputs: [wsa]}
          b: {type: collector, inputs: [a]}
    """)[2] == "block 'b' (collector): input 1 is block 'a' (collector), a sink: " \
               "it produces nothing"


def test_a_source_takes_no_inputs():
    """Inputs given to a source are reported."""
    assert only_problem("""\
        version: 1
        blocks:
          a: {type: simulated_instrument}
          b: {type: simulated_instrument, inputs: [a]}
    """)[2] == "block 'b' (simulated_instrument): takes no inputs (it is a source), got 1"


def test_a_block_cannot_consume_itself():
    """A block listed as its own input is refused once, clearly."""
    assert only_problem("""\
        version: 1
        blocks:
          h: {type: max_hold, inputs: [h]}
    """)[2] == "block 'h' (max_hold): a block cannot be its own input"


def test_long_cycle_reported_once():
    """A three-block loop is one problem naming the whole loop."""
    line, column, message = only_problem("""\
        version: 1
        blocks:
          a: {type: max_hold, inputs: [c]}
          b: {type: min_hold, inputs: [a]}
          c: {type: average_block, inputs: [b]}
    """)
    assert message.startswith("block 'a': blocks a -> b -> c -> a form a cycle")


def test_blocks_may_be_written_in_any_order():
    """Inputs declared later than their consumer are fine; build order follows the flow."""
    pipeline = check_text(textwrap.dedent("""\
        version: 1
        blocks:
          out: {type: collector, inputs: [fft]}
          fft: {type: fft_block, inputs: [wsa]}
          wsa: {type: simulated_instrument}
    """))
    assert list(pipeline.blocks) == ["wsa", "fft", "out"]


def test_empty_params_and_single_input_shorthand():
    """'params:' left empty means none, and one input may be written without brackets."""
    pipeline = check_text(textwrap.dedent("""\
        version: 1
        blocks:
          wsa:
            type: simulated_instrument
            params:
          out:
            type: collector
            inputs: wsa
    """))
    assert pipeline.blocks["wsa"].params == {}
    assert pipeline.blocks["out"].inputs == ("wsa",)


@pytest.mark.parametrize("text, where, start", [
    ("blocks: {a: {type: simulated_instrument}}\n", (1, 1),
     "pipeline: missing field 'version'"),
    ("version: 2\nblocks: {a: {type: collector}}\n", (1, 10), "pipeline: version: "
     "unsupported version 2; this pyrf_blocks reads version 1"),
    ("version: 1\nblocks: {}\n", (2, 9), "pipeline: blocks:"),
    ("version: 1\nblocks: {a: {type: simulated_instrument}}\nextra: 1\n", (3, 1),
     "pipeline: unknown field 'extra'"),
    ("- version: 1\n", (1, 1), "a pipeline file is a mapping"),
    ("version: 1\nblocks:\n  a: {type: collector}\n  a: {type: printer}\n", (4, 3),
     "'a' is written twice (first on line 3)"),
    ("version: 1\nblocks: [a\n", (3, 1), "YAML syntax: "),
    ("version: 1\nblocks:\n  a: !!python/object:os.system {type: x}\n", (3, 6),
     "the tag 'tag:yaml.org,2002:python/object:os.system' is not allowed"),
    ("", (0, 0), "the file is empty"),
    ("version: 1\nblocks: " + "[" * 5000 + "]" * 5000 + "\n", (0, 0),
     "the file nests too deeply to be a pipeline"),
    ("version: 1\nblocks:\n  w: {type: simulated_instrument, params: {seed: " + "1" * 5000
     + "}}\n", (3, 50), "cannot read '1111"),
    ("version: 1\nblocks:\n  w: {type: simulated_instrument, params: {sample_rate: " + "9" * 400
     + "}}\n", (3, 57), "block 'w' (simulated_instrument): sample_rate: 9999"),
    ("version: 1\nblocks:\n  2a: {type: simulated_instrument}\n", (3, 3),
     "pipeline: '2a' is not a valid name"),
])
def test_file_level_mistakes(text, where, start):
    """Mistakes in the file's structure are reported at their position."""
    found = problems_of(text)
    assert (found[0][0], found[0][1]) == where, found
    assert found[0][2].startswith(start), found


def test_nesting_is_refused_at_one_depth_wherever_the_loader_is_called():
    """Nesting up to MAX_DEPTH is read; one level more is refused, also from a deep stack."""
    from pyrf_blocks.pipeline.loader import MAX_DEPTH, load_document

    def nested(depth):  # the top-level mapping is the first level
        return "blocks: " + "[" * (depth - 1) + "]" * (depth - 1) + "\n"

    def from_a_deep_stack(frames, text):
        if frames:
            return from_a_deep_stack(frames - 1, text)
        return load_document(text)

    assert load_document(nested(MAX_DEPTH)).data["blocks"]
    assert from_a_deep_stack(600, nested(MAX_DEPTH)).data["blocks"]
    with pytest.raises(PipelineError) as caught:
        load_document(nested(MAX_DEPTH + 1))
    assert [p.message for p in caught.value.problems] == [
        "the file nests too deeply to be a pipeline"]


@pytest.mark.parametrize("process, message", [
    ("{url: 'http://h:8750', token: s3cret}", "a literal token may not be written"),
    ("{url: 'ftp://h'}", "url: 'ftp://h' is not an http:// or https:// URL"),
    ("{kind: remote}", "a remote process needs a url"),
    ("{kind: child, url: 'http://h:1'}", "a child process takes no url or token_env"),
    ("{url: 'http://h:1', token_env: 'MY TOKEN'}", "token_env: 'MY TOKEN' is not an "
     "environment variable name"),
    ("kid", "kind: 'kid' is not one of 'local', 'child' or 'remote'"),
])
def test_process_mistakes(process, message):
    """Processes are checked: kinds, URLs, and never a literal token."""
    line, column, found = only_problem(f"""\
        version: 1
        processes:
          lab: {process}
        blocks:
          wsa: {{type: simulated_instrument, proc: lab}}
          out: {{type: collector, inputs: [wsa]}}
    """)
    assert line == 3
    assert found.startswith(f"process 'lab': {message}"), found


def test_a_sink_can_be_placed_on_a_process():
    """A recorder placed on a child process checks like any placed block."""
    pipeline = check_text(textwrap.dedent("""\
        version: 1
        processes: {dsp: child}
        blocks:
          wsa: {type: simulated_instrument}
          out: {type: record_block, inputs: [wsa], proc: dsp, params: {path: run}}
    """), "p.yaml")
    assert pipeline.blocks["out"].proc == "dsp"


def test_local_cannot_be_redeclared():
    """'local' is this process and cannot be made a child or a worker."""
    assert only_problem("""\
        version: 1
        processes: {local: child}
        blocks:
          out: {type: collector, inputs: [wsa]}
          wsa: {type: simulated_instrument}
    """)[2].startswith("process 'local': 'local' is this process")


@pytest.mark.parametrize("params, message", [
    ("{size: 1.5}", "size: 1.5 is not a whole number of samples"),
    ("{size: true}", "size: True is not a count"),
    ("{window: 3}", "window: expected a string, got 3 (an integer)"),
    ("{overlap: 1MHz}", "overlap: '1MHz' is not a count"),
])
def test_wrong_type_or_unit(params, message):
    """Values of the wrong type or unit are refused, naming the parameter."""
    line, column, found = only_problem(f"""\
        version: 1
        blocks:
          wsa: {{type: simulated_instrument}}
          fft: {{type: fft_block, inputs: [wsa], params: {params}}}
          out: {{type: collector, inputs: [fft]}}
    """)
    assert found.startswith(f"block 'fft' (fft_block): {message}"), found


def test_converted_parameters_keep_only_what_was_written():
    """Parameters come out in base units; unwritten ones are left to the block."""
    pipeline = check_text(textwrap.dedent("""\
        version: 1
        blocks:
          wsa:
            type: simulated_instrument
            params: {center_frequency: 5.8GHz, tones: [[1MHz, -20dBm]], harmonics: [[2, -40dBc]]}
          fft: {type: fft_block, inputs: [wsa], params: {size: 4Ki}}
          out: {type: printer, inputs: [fft], policy: drop_oldest, maxsize: 3, params: {interval: 500ms}}
    """))
    assert pipeline.blocks["wsa"].params == {
        "center_frequency": 5.8e9, "tones": [(1e6, -20.0)], "harmonics": [(2, -40.0)]}
    assert pipeline.blocks["fft"].params == {"size": 4096}
    out = pipeline.blocks["out"]
    assert (out.params, out.policy, out.maxsize) == ({"interval": 0.5}, "drop_oldest", 3)


def test_idle_chains_are_known_before_running():
    """A chain that no sink consumes is marked idle, as lazy connection will leave it."""
    pipeline = check_text(textwrap.dedent("""\
        version: 1
        blocks:
          wsa: {type: simulated_instrument}
          fft: {type: fft_block, inputs: [wsa]}
          cal: {type: calibrate_block, inputs: [fft]}
          thd: {type: thd_block, inputs: [wsa]}
          out: {type: collector, inputs: [thd]}
    """))
    assert pipeline.active_blocks() == {"wsa", "thd", "out"}


SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(allow_nan=True),
                    st.sampled_from(["wsa", "fft", "collector", "fft_block", "latest", "1Ki",
                                     "2.4GHz", "child", "local", "http://h:1", "", "type",
                                     "inputs", "params", "token", "-20dBm"]))
KEYS = st.sampled_from(["version", "blocks", "processes", "type", "params", "inputs", "policy",
                        "maxsize", "proc", "url", "token_env", "token", "kind", "wsa", "fft",
                        "out", "size", "center_frequency", "tones", "local", 1, None])
TREES = st.recursive(SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(KEYS, children, max_size=5)), max_leaves=25)


@settings(max_examples=100, deadline=None)
@given(TREES)
def test_any_structure_gives_problems_not_crashes(tree):
    """Whatever a file holds, checking it succeeds or raises PipelineError, never anything else."""
    stream = io.StringIO()
    YAML(typ="safe", pure=True).dump(tree, stream)
    try:
        check_text(stream.getvalue())
    except PipelineError as error:
        assert error.problems and all(p.message for p in error.problems)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_damaged_examples_give_problems_not_crashes(data):
    """An example file with characters deleted or replaced is reported, never a crash."""
    path = data.draw(st.sampled_from(EXAMPLES))
    with open(path, encoding="utf-8") as stream:
        text = stream.read()
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(text) - 1))
        text = text[:at] + data.draw(st.sampled_from(["", " ", "x", "[", ":", "-", "\n", "1"])) \
            + text[at + 1:]
    try:
        check_text(text)
    except PipelineError as error:
        assert error.problems and all(p.message for p in error.problems)


def test_anchors_and_merge_keys_share_settings():
    """x- fields hold anchors; '<<: *anchor' merges them, keys written beside it win."""
    text = textwrap.dedent("""\
        version: 1
        x-instrument: &sim
          type: simulated_instrument
          params: {sample_rate: 1MHz, seed: 1}
        blocks:
          wsa1: *sim
          wsa2:
            <<: *sim
            params: {sample_rate: 2MHz, seed: 2x}
          out1: {type: collector, inputs: [wsa1]}
          out2: {type: collector, inputs: [wsa2]}
    """)
    assert problems_of(text) == [
        (9, 39, "block 'wsa2' (simulated_instrument): seed: expected an integer, got "
                "'2x' (a string)")]
    pipeline = check_text(text.replace("2x", "2"))
    assert pipeline.blocks["wsa2"].type_name == "simulated_instrument"
    assert pipeline.blocks["wsa2"].params == {"sample_rate": 2e6, "seed": 2}
    assert pipeline.blocks["wsa1"].params == {"sample_rate": 1e6, "seed": 1}


@pytest.mark.timeout(30)
def test_an_alias_bomb_is_read_once():
    """Nested aliases (10^8 leaves if expanded) are built once, and messages stay short."""
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for level in range(1, 8):
        levels.append(f"a{level}: &a{level} [" + ", ".join([f"*a{level - 1}"] * 10) + "]")
    text = "\n".join(["version: 1", "anchors:"] + ["  " + line for line in levels] + [
        "blocks:",
        "  wsa: {type: simulated_instrument, params: {model: *a7, tones: *a7}}",
        "  out: {type: collector, inputs: *a7}"]) + "\n"
    found = problems_of(text)
    assert found and all(len(message) < 400 for _, _, message in found), found
    assert any("model: expected a string, got [[[" in message for _, _, message in found)
