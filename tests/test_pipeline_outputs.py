"""
Pipeline files name a block's other outputs as ``name:output``: checked at
load with line and column, built, drawn, described and written back.
"""

import textwrap

import numpy as np
import pytest
from twisted.internet import task

from pyrf_blocks import Graph, collector, simulated_instrument
from pyrf_blocks.pipeline import (PipelineError, build, check_text, describe, graph_to_yaml,
                                  pipeline_to_dot)
from pyrf_blocks.testing import run_clock

TEE_FILE = textwrap.dedent("""\
    version: 1
    blocks:
      wsa:
        type: simulated_instrument
        params: {count: 6, paced: false, packets_per_block: 2}
      tee:
        type: tee_power
        inputs: [wsa]
      powers:
        type: collector
        inputs: [tee:power]
      samples:
        type: collector
        inputs: tee
    """)


def test_a_side_output_is_built_and_read(tee_power):
    """inputs: [tee:power] connects the collector to that output: one real value per two chunks."""
    graph = Graph(task.Clock())
    build(check_text(TEE_FILE, "tee.yaml"), graph)
    assert run_clock(graph.reactor, graph) is None
    powers, samples = graph.blocks["powers"], graph.blocks["samples"]
    assert [c.kind for c in powers.chunks] == ["real"] * 3
    assert [c.kind for c in samples.chunks] == ["iq"] * 6
    assert powers.chunks[0].start == samples.chunks[0].start
    assert powers.chunks[-1].end == samples.chunks[-1].end


def test_an_unknown_output_is_reported_with_line_column_and_the_outputs_there_are(tee_power):
    """A misspelt output names the block's outputs, at the input's line and column."""
    with pytest.raises(PipelineError) as caught:
        check_text(TEE_FILE.replace("tee:power", "tee:powr"), "tee.yaml")
    [problem] = caught.value.problems
    assert str(problem) == ("tee.yaml:11:14: block 'powers' (collector): input 'tee:powr': "
                            "block 'tee' (tee_power) has no output 'powr'; it has "
                            "'main', 'power'")


def test_a_side_output_of_the_wrong_kind_names_the_output(tee_power):
    """A consumer that needs spectra refuses the real 'power' output, saying which output it was."""
    text = TEE_FILE.replace("type: collector\n    inputs: [tee:power]",
                            "type: calibrate_block\n    inputs: [tee:power]")
    with pytest.raises(PipelineError) as caught:
        check_text(text, "tee.yaml")
    message = str(caught.value.problems[0])
    assert "must provide ISpectrumProducer, but block 'tee' (tee_power) output 'power' " \
           "provides IRealProducer" in message


def test_an_input_reference_must_be_a_name_or_name_colon_output(tee_power):
    """Anything else (two colons, a space) is a schema error at the input."""
    with pytest.raises(PipelineError) as caught:
        check_text(TEE_FILE.replace("tee:power", "tee:po:wer"), "tee.yaml")
    assert "tee.yaml:11" in str(caught.value.problems[0])


def test_outputs_are_described_and_drawn(tee_power):
    """describe() lists tee:power as the input; the dot edge is labelled with the output."""
    pipeline = check_text(TEE_FILE, "tee.yaml")
    assert "inputs: tee:power (block)" in describe(pipeline)
    assert '"tee" -> "powers" [label="power"];' in pipeline_to_dot(pipeline)


def test_a_python_graph_reading_an_output_writes_back_as_the_same_file(tee_power):
    """graph_to_yaml writes a side output as name:output, and the file builds the same graph."""
    graph = Graph(task.Clock())
    wsa = simulated_instrument(graph=graph, name="wsa", count=4, paced=False)
    tee = tee_power(wsa, name="tee")
    collector(tee.output("power"), name="powers")
    text = graph_to_yaml(graph)
    assert "- tee:power" in text or "[tee:power]" in text
    again = Graph(task.Clock())
    build(check_text(text, "again.yaml"), again)
    assert run_clock(again.reactor, again) is None
    assert len(again.blocks["powers"].chunks) == 2
    assert np.all(np.isfinite(again.blocks["powers"].chunks[0].data))
