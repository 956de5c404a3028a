"""
Building pipeline files into graphs, and writing graphs back as files and
as Graphviz dot: the Python and YAML forms give the same graph and output.
"""

import io
import os
import textwrap

import numpy as np
import pydot
import pytest
from numpy.testing import assert_array_equal
from twisted.internet import task

from pyrf_blocks import (WSA4000, Graph, average_block, calibrate_block, collector, decimate_block,
                         fft_block, max_hold, min_hold, peak_search, printer,
                         simulated_instrument,
                         thd_block)
from pyrf_blocks import registry
from pyrf_blocks.block import Sink
from pyrf_blocks.interfaces import KIND_INTERFACES, ISink, ISpectrumProducer
from pyrf_blocks.pipeline import (PipelineError, build, check_file, check_text, describe,
                                  graph_to_data, graph_to_dot, graph_to_yaml, pipeline_to_dot)
from pyrf_blocks.pipeline.export import ExportError
from pyrf_blocks.testing import array_source, assert_provides

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def python_graph(clock):
    """A graph built in Python using every built-in block type, non-default parameters."""
    graph = Graph(clock)
    wsa = simulated_instrument(graph=graph, name="wsa", center_frequency=5.8e9,
                               sample_rate=1e6, samples_per_packet=256, packets_per_block=4,
                               tones=((1e5, -20.0), (-2.5e5, -50.0)), harmonics=((2, -40.0),),
                               noise_floor=-120.0, seed=7, model="WSA4000")
    spectra = calibrate_block(fft_block(wsa, size=512, window="blackmanharris",
                                        overlap=128), offset=1.5, name="cal")
    collector(peak_search(max_hold(spectra), count=3, every_frame=True), name="peaks")
    collector(average_block(spectra, count=4), name="averages", policy="drop_oldest",
              maxsize=64)
    collector(min_hold(spectra), name="lows", keep=2)
    collector(thd_block(decimate_block(wsa, factor=2), size=1024, harmonics=3), name="thd")
    printer(spectra, stream=io.StringIO(), interval=0.01, name="log")
    return graph


def run_for(graph, clock, seconds):
    """Advance the clock through ``seconds`` of device time, then stop the graph cleanly."""
    for _ in range(int(seconds / 0.001)):
        clock.advance(0.001)
    graph.stop()
    clock.advance(0)
    return {name: block.chunks for name, block in graph.blocks.items()
            if isinstance(block, collector)}


def assert_same_output(first, second):
    assert first.keys() == second.keys()
    for name in first:
        assert len(first[name]) == len(second[name]) > 0, name
        for a, b in zip(first[name], second[name]):
            assert (a.kind, a.start, a.end, a.rate, a.seq) == (b.kind, b.start, b.end,
                                                               b.rate, b.seq)
            assert a.meta == b.meta
            assert_array_equal(a.data, b.data)


def test_python_and_yaml_give_the_same_output():
    """A Python graph exported to YAML and built back gives identical chunks."""
    clock = task.Clock()
    graph = python_graph(clock)
    text = graph_to_yaml(graph)
    original = run_for(graph, clock, 0.05)

    clock2 = task.Clock()
    rebuilt = build(check_text(text), Graph(clock2))
    assert list(rebuilt.blocks) == list(graph.blocks)
    assert_same_output(original, run_for(rebuilt, clock2, 0.05))


def test_export_is_a_fixed_point():
    """Exporting the graph built from an exported file gives the same file."""
    text = graph_to_yaml(python_graph(task.Clock()))
    assert graph_to_yaml(build(check_text(text), Graph(task.Clock()))) == text


def test_export_writes_units_and_leaves_out_defaults():
    """Parameters differing from their default are written, with their units."""
    data = graph_to_data(python_graph(task.Clock()))
    assert data["version"] == 1
    blocks = data["blocks"]
    assert blocks["wsa"] == {"type": "simulated_instrument", "params": {
        "center_frequency": "5.8GHz", "sample_rate": "1MHz", "samples_per_packet": 256,
        "packets_per_block": 4, "tones": [["100kHz", "-20dBm"], ["-250kHz", "-50dBm"]],
        "harmonics": [[2, "-40dBc"]], "noise_floor": "-120dBm/Hz", "seed": 7,
        "model": "WSA4000"}}
    assert blocks["fft_block"] == {"type": "fft_block", "inputs": ["wsa"], "params": {
        "size": 512, "window": "blackmanharris", "overlap": 128}}
    assert blocks["averages"]["policy"] == "drop_oldest"
    assert blocks["averages"]["maxsize"] == 64
    assert "stream" not in blocks["log"]["params"]  # Python only
    assert blocks["log"]["params"] == {"interval": "10ms"}


def test_seed_example_is_the_seed_script():
    """examples/spectrum.yaml describes the same graph as its Python script."""
    graph = Graph(task.Clock())
    wsa = WSA4000("sim", graph=graph, name="wsa", sample_rate=7.8125e6,
                  tones=[(1e6, -20.0), (-2.5e6, -45.0)], noise_floor=-150.0, seed=0)
    fft = fft_block(wsa, name="fft", size=1024, window="hann")
    calibrate = calibrate_block(fft, name="calibrate")
    hold = max_hold(calibrate, name="hold")
    peaks = peak_search(hold, name="peaks", count=3)
    printer(peaks, name="spectrum", policy="latest", interval=1.0,
            stream=io.StringIO())
    from_file = build(check_file(os.path.join(ROOT, "examples", "spectrum.yaml")),
                      Graph(task.Clock()))
    assert graph_to_data(graph) == graph_to_data(from_file)


def test_built_blocks_provide_their_interfaces():
    """Every block built from the seed example provides its kind's interface, sinks ISink."""
    graph = build(check_file(os.path.join(ROOT, "examples", "spectrum.yaml")),
                  Graph(task.Clock()))
    assert {b.type_name for b in graph.blocks.values()} == {
        "simulated_instrument", "fft_block", "calibrate_block", "max_hold",
        "peak_search", "printer"}
    for block in graph.blocks.values():
        if block.kind is None:
            assert_provides(ISink, block)
        else:
            assert_provides(KIND_INTERFACES[block.kind], block)
    assert graph.blocks["fft"].size == 1024
    assert graph.blocks["wsa"].settings["tones"] == ((1e6, -20.0), (-2.5e6, -45.0))
    assert graph.blocks["spectrum"].input_policy == "latest"


def test_seed_example_runs_to_the_expected_peaks():
    """The seed's single-process file finds its two tones at their levels."""
    clock = task.Clock()
    graph = build(check_file(os.path.join(ROOT, "examples", "spectrum.yaml")), Graph(clock))
    graph.blocks["spectrum"].close()
    peaks = collector(graph.blocks["peaks"], keep=1)
    run_for(graph, clock, 0.02)
    table = peaks.chunks[-1].data[-1]
    np.testing.assert_allclose(table[:2, 0], [2.401e9, 2.3975e9], atol=7.7e3)  # one bin
    np.testing.assert_allclose(table[:2, 1], [-20.0, -45.0], atol=1.5)  # scalloping


def test_values_a_block_rejects_are_reported_at_their_line():
    """A value the block's rules refuse (one parameter against another) is found by checking, at its line."""
    with pytest.raises(PipelineError) as caught:
        check_text(textwrap.dedent("""\
            version: 1
            blocks:
              wsa: {type: simulated_instrument}
              fft:
                type: fft_block
                inputs: [wsa]
                params: {size: 256, overlap: 1Ki}
              out: {type: collector, inputs: [fft]}
              raw: {type: collector, inputs: [wsa]}
        """), "p.yaml")
    assert str(caught.value) == ("p.yaml:7:34: block 'fft' (fft_block): overlap: must be "
                                 "less than size (256), got 1024")


def test_what_only_building_finds_is_reported_at_the_block_line(tmp_path):
    """What only the built block can judge (a missing file) fails the build at its line; nothing keeps running."""
    pipeline = check_text(textwrap.dedent(f"""\
        version: 1
        blocks:
          wsa: {{type: simulated_instrument}}
          replay:
            type: sigmf_source
            params: {{path: {str(tmp_path / "missing")!r}}}
          out: {{type: collector, inputs: [replay]}}
          raw: {{type: collector, inputs: [wsa]}}
    """), "p.yaml")
    graph = Graph(task.Clock())
    with pytest.raises(PipelineError) as caught:
        build(pipeline, graph)
    assert str(caught.value).startswith("p.yaml:6:13: block 'replay' (sigmf_source): "
                                        "sigmf_source: cannot read"), str(caught.value)
    assert not graph.blocks["wsa"].active
    assert graph.sinks == ()


def test_unset_token_variable_is_reported():
    """A token_env variable that is not set is named, at its line."""
    pipeline = check_text(textwrap.dedent("""\
        version: 1
        processes:
          lab: {url: "http://lab:8750", token_env: LAB_TOKEN}
        blocks:
          wsa: {type: simulated_instrument}
          out: {type: collector, inputs: [wsa]}
    """), "p.yaml")
    with pytest.raises(PipelineError) as caught:
        build(pipeline, Graph(task.Clock()), environ={})
    assert str(caught.value) == ("p.yaml:3:44: process 'lab': the environment variable "
                                 "LAB_TOKEN (token_env) is not set")
    graph = build(pipeline, Graph(task.Clock()), environ={"LAB_TOKEN": "x"})
    assert graph.blocks["wsa"].active  # no block placed there: it runs here


def test_unregistered_blocks_cannot_be_exported():
    """A block type the registry does not know is named in the export error."""
    graph = Graph(task.Clock())
    collector(array_source([np.zeros(4)], graph=graph, name="samples"))
    with pytest.raises(ExportError, match="array_source 'samples': its type is not registered"):
        graph_to_yaml(graph)


def test_dot_draws_idle_chains_dotted():
    """Without a sink the seed's chain is dotted; a sink makes it solid."""
    idle = check_text(textwrap.dedent("""\
        version: 1
        blocks:
          WSA4000: {type: simulated_instrument}
          FFT: {type: fft_block, inputs: [WSA4000]}
          calibrate: {type: calibrate_block, inputs: [FFT]}
    """))
    dot = pipeline_to_dot(idle)
    assert '"WSA4000" -> "FFT" [style=dotted];' in dot
    assert '"FFT" -> "calibrate" [style=dotted];' in dot
    assert '"WSA4000" [label="WSA4000\\nsimulated_instrument", shape=box];' in dot

    graph = Graph(task.Clock())
    wsa = simulated_instrument(graph=graph, name="WSA4000")
    calibrate = calibrate_block(fft_block(wsa, name="FFT"), name="calibrate")
    assert '[style=dotted]' in graph_to_dot(graph)
    collector(calibrate, name="spectrum", policy="latest")
    live = graph_to_dot(graph)
    assert '"WSA4000" -> "FFT";' in live and '"FFT" -> "calibrate";' in live
    assert '"calibrate" -> "spectrum" [label="latest"];' in live
    assert '"spectrum" [label="spectrum\\ncollector", shape=box];' in live


def test_dot_clusters_blocks_by_process():
    """Blocks placed on a process are drawn in that process's cluster, as in the seed."""
    dot = pipeline_to_dot(check_file(os.path.join(ROOT, "examples", "two_processes.yaml")))
    cluster = dot[dot.index('subgraph "cluster_process1"'):]
    cluster = cluster[:cluster.index("}")]
    assert 'label = "process1 (child process)";' in cluster
    assert '"fft1"' in cluster and '"calibrate1"' in cluster and '"fft2"' not in cluster


def test_describe_resolves_every_parameter():
    """The dry-run listing shows given values in base units and marks defaults."""
    text = describe(check_file(os.path.join(ROOT, "examples", "spectrum.yaml")))
    assert "  wsa: simulated_instrument, emits iq, on local, runs" in text
    assert "      center_frequency = 2400000000.0 Hz\n" in text
    assert "      samples_per_packet = 1024  (default)\n" in text
    assert "      inputs: peaks (latest)\n" in text
    assert "stream" not in text


def test_any_constructor_error_is_reported_at_its_line(monkeypatch):
    """A block failing to be made for any reason (a file it cannot open) is one clear line."""

    class file_sink(Sink):
        """Fails as a sink writing to a missing folder would (test only)."""
        type_name = "test_file_sink"
        requires = (ISpectrumProducer,)

        def __init__(self, producer, path="out.bin", **kwargs):
            raise FileNotFoundError(f"no such folder for {path!r}")

    monkeypatch.setitem(registry._TYPES, file_sink.type_name, file_sink)
    pipeline = check_text(textwrap.dedent("""\
        version: 1
        blocks:
          wsa: {type: simulated_instrument}
          fft: {type: fft_block, inputs: [wsa]}
          keep: {type: collector, inputs: [fft]}
          disk: {type: test_file_sink, inputs: [fft], params: {path: /nowhere/x.bin}}
    """), "p.yaml")
    graph = Graph(task.Clock())
    with pytest.raises(PipelineError) as caught:
        build(pipeline, graph)
    assert str(caught.value) == ("p.yaml:6:55: block 'disk' (test_file_sink): "
                                 "FileNotFoundError: no such folder for '/nowhere/x.bin'")
    assert not graph.blocks["wsa"].active  # the collector made before it was closed


#: pydot's parser calls pyparsing names that newer pyparsing deprecates.
PYDOT_WARNINGS = pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning")


@PYDOT_WARNINGS
@pytest.mark.parametrize("name", ["spectrum.yaml", "two_processes.yaml", "distributed.yaml"])
def test_dot_is_graphviz(name):
    """A real dot parser reads the drawing: every block, edge and process cluster."""
    pipeline = check_file(os.path.join(ROOT, "examples", name))
    graphs = pydot.graph_from_dot_data(pipeline_to_dot(pipeline))
    assert len(graphs) == 1
    graph = graphs[0]
    clusters = {sub.get_name().strip('"'): {n.get_name().strip('"') for n in sub.get_nodes()}
                for sub in graph.get_subgraphs()}
    nodes = {n.get_name().strip('"') for n in graph.get_nodes()}
    assert nodes | set().union(*clusters.values()) == set(pipeline.blocks)
    for proc in set(b.proc for b in pipeline.blocks.values()) - {"local"}:
        assert clusters[f"cluster_{proc}"] == {b.name for b in pipeline.blocks.values()
                                               if b.proc == proc}
    edges = {(e.get_source().strip('"'), e.get_destination().strip('"'))
             for e in graph.get_edges()}
    assert edges == {(i, b.name) for b in pipeline.blocks.values() for i in b.inputs}


@PYDOT_WARNINGS
def test_dot_quotes_any_name():
    """Names with dots and dashes survive Graphviz quoting."""
    pipeline = check_text(textwrap.dedent("""\
        version: 1
        blocks:
          wsa.lab-1: {type: simulated_instrument}
          out-2.x: {type: collector, inputs: [wsa.lab-1], policy: latest}
    """))
    graph = pydot.graph_from_dot_data(pipeline_to_dot(pipeline, name='my "lab"'))[0]
    edge = graph.get_edges()[0]
    assert (edge.get_source(), edge.get_destination()) == ('"wsa.lab-1"', '"out-2.x"')
    assert graph.get_name() == '"my \\"lab\\""'
