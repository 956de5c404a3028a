"""
From a graph or a pipeline to text: a pipeline file (YAML), Graphviz dot
and a plain listing.

A graph built in Python exports to the same file a person would write, and
reading that file back builds the same graph.  Parameters are written only
where they differ from the block's default, with their units
(``center_frequency: 2.4GHz``) when that reads back to exactly the same
number.  A parameter's current value is read from the block's ``settings``
mapping when it has one (a source configurable while it runs) and from its
attribute of the same name otherwise; parameters only Python can give (a
printer's stream) are left out.  Sensor pipelines
that came from a file (a ``sensor_store``'s, and those fed from MQTT that
the graph keeps in ``sensor_pipelines``) are written under ``pipelines``
as the file wrote them.  Placement is not exported yet: a block
placed in another process from Python cannot be written.  Dot draws the graph as the seed does: sources and sinks as boxes,
blocks of one process in a cluster, and an edge dotted while nothing
downstream of it consumes, so the chain behind it stays idle.
"""

import io

import numpy as np
from ruamel.yaml import YAML

from ..block import MAIN
from ..edge import DEFAULT_MAXSIZE
from ..errors import ExportError
from ..registry import lookup
from .schema import SUPPORTED_VERSION, param_specs
from ..units import format_quantity
from .validate import LOCAL, check_text

__all__ = ["graph_to_data", "graph_to_yaml", "graph_to_dot",
           "pipeline_to_dot", "describe"]


def _plain(value, where):
    """
    ``value`` as YAML-native data: numpy scalars to numbers, tuples to lists.
    """
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (tuple, list)):
        return [_plain(item, where) for item in value]
    if isinstance(value, dict) and all(isinstance(key, str) for key in value):
        return {key: _plain(item, where) for key, item in value.items()}
    raise ExportError(f"{where}: {value!r} cannot be written to a pipeline file")


def _with_units(value, unit):
    if value is None or unit is None:
        return value
    if isinstance(unit, tuple):
        return [[format_quantity(item, part) for item, part in zip(row, unit)]
                for row in value]
    return format_quantity(value, unit)


def _parameter_value(block, name):
    settings = getattr(block, "settings", None)
    if isinstance(settings, dict) and name in settings:
        return settings[name]
    try:
        return getattr(block, name)
    except AttributeError:
        raise ExportError(f"{block.type_name} {block.name!r}: parameter {name!r} "
                          "cannot be read back (the block keeps no attribute of "
                          "that name)") from None


def _sensor_reference(value, sections, where):
    """
    The name to write for a sensor pipeline parameter, its stages added to
    ``sections``; other values as they are.
    """
    from ..sensors.pipeline import SensorPipeline

    if not isinstance(value, SensorPipeline):
        return value
    _add_section(sections, value, where)
    return value.name


def _add_section(sections, pipeline, where):
    if pipeline.spec is None:
        raise ExportError(f"{where}: sensor pipeline {pipeline.name!r} was made in Python, "
                          "so a pipeline file cannot write it; give its file's path")
    known = sections.get(pipeline.name)
    if known is not None and known != pipeline.spec:
        raise ExportError(f"{where}: two different sensor pipelines are named "
                          f"{pipeline.name!r}")
    sections[pipeline.name] = pipeline.spec


def _block_data(block, sections):
    label = f"{block.type_name} {block.name!r}"
    try:
        registered = lookup(block.type_name)
    except LookupError:
        registered = None
    if registered is not type(block):
        raise ExportError(f"{label}: its type is not registered, so a pipeline file "
                          "cannot name it (use pyrf_blocks.registry.register)")
    data = {"type": block.type_name}
    if block.inputs:
        data["inputs"] = [producer.name for producer in block.inputs]
    params = {}
    for name, spec in param_specs(type(block)).items():
        if spec.python_only:
            continue
        where = f"{label}: parameter {name!r}"
        value = _plain(_sensor_reference(_parameter_value(block, name), sections, where),
                       where)
        if not spec.required and value == _plain(spec.default, where):
            continue
        params[name] = _with_units(value, spec.unit)
    if params:
        data["params"] = params
    if block.input_policy != "block":
        data["policy"] = block.input_policy
    if block.input_policy != "latest" and block.input_maxsize != DEFAULT_MAXSIZE:
        data["maxsize"] = block.input_maxsize
    return data


def graph_to_data(graph, description=None):
    """
    The pipeline-file data (plain dicts) describing ``graph``.

    :raises ExportError: naming the block that a file cannot describe.
    """
    data = {"version": SUPPORTED_VERSION}
    if description:
        data["description"] = description
    # Blocks are added to a graph after their inputs: already in flow order.
    sections = {}
    data["blocks"] = {name: _block_data(block, sections)
                      for name, block in graph.blocks.items()}
    for name, pipeline in graph.sensor_pipelines.items():
        _add_section(sections, pipeline, f"sensor pipeline {name!r}")
    if sections:
        data["pipelines"] = _plain(sections, "pipelines")
    return data


def graph_to_yaml(graph, description=None):
    """
    ``graph`` as the text of a pipeline file.
    """
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = None  # nested rows on one line, mappings in blocks
    yaml.sort_base_mapping_type_on_output = False
    yaml.allow_unicode = True
    stream = io.StringIO()
    yaml.dump(graph_to_data(graph, description), stream)
    return stream.getvalue()


def _quote(text):
    return '"' + str(text).replace("\\", "\\\\").replace('"', '\\"') + '"'


def pipeline_to_dot(pipeline, name="pipeline", fusions=()):
    """
    Graphviz dot of a checked pipeline; the blocks of each of ``fusions``
    (:class:`~pyrf_blocks.optimise.Fusion`) in a dashed cluster named after
    its rule.
    """
    active = pipeline.active_blocks()
    lines = [f"digraph {_quote(name)} {{"]

    def node(block, indent):
        shape = ", shape=box" if block.is_sink or not block.inputs else ""
        label = f"{block.name}\\n{block.type_name}"
        lines.append(f"{indent}{_quote(block.name)} [label=\"{label}\"{shape}];")

    for proc, process in pipeline.processes.items():
        members = [b for b in pipeline.blocks.values() if b.proc == proc]
        if proc == LOCAL:
            for block in members:
                node(block, "   ")
        elif members:
            where = process.url if process.kind == "remote" else "child process"
            lines.append(f"   subgraph {_quote('cluster_' + proc)} {{")
            lines.append(f"      label = {_quote(f'{proc} ({where})')};")
            for block in members:
                node(block, "      ")
            lines.append("   }")
    for number, fusion in enumerate(fusions):
        lines.append(f"   subgraph {_quote(f'cluster_fused_{number}')} {{")
        lines.append(f"      label = {_quote('fused: ' + fusion.rule)}; style = dashed;")
        lines.append("      " + " ".join(f"{_quote(b)};" for b in fusion.blocks))
        lines.append("   }")
    for block in pipeline.blocks.values():
        for upstream, output in zip(block.inputs, block.input_outputs):
            style = []
            if block.name not in active:
                style.append("style=dotted")
            label = [output] if output != MAIN else []
            if block.policy != "block":
                label.append(block.policy)
            if label:
                style.append(f"label={_quote(', '.join(label))}")
            attributes = f" [{', '.join(style)}]" if style else ""
            lines.append(f"   {_quote(upstream)} -> {_quote(block.name)}{attributes};")
    lines.append("}")
    return "\n".join(lines) + "\n"


def graph_to_dot(graph, name="pipeline"):
    """
    Graphviz dot of a graph built in Python (through its pipeline file, so
    both forms draw alike).
    """
    return pipeline_to_dot(check_text(graph_to_yaml(graph)), name)


def describe(pipeline):
    """
    The resolved pipeline as text: each block with its type, process,
    inputs and edge policy, what it emits, whether it will run, and every
    parameter with its value in base units (defaults marked).
    """
    active = pipeline.active_blocks()
    count = len(pipeline.blocks)
    lines = [f"pipeline {pipeline.filename}: {count} block{'s' * (count != 1)}, "
             f"{len(pipeline.sinks)} sink{'s' * (len(pipeline.sinks) != 1)}"]
    if pipeline.description:
        lines.append(f"  {pipeline.description.strip()}")
    for block in pipeline.blocks.values():
        emits = "sink" if block.is_sink else f"emits {block.kind}"
        state = "runs" if block.name in active else "idle (nothing consumes it)"
        where = (block.proc if block.proc == LOCAL
                 else f"{block.proc} ({pipeline.processes[block.proc].kind})")
        lines.append(f"  {block.name}: {block.type_name}, {emits}, on {where}, {state}")
        if block.inputs:
            edge = block.policy if block.maxsize is None else f"{block.policy}/{block.maxsize}"
            lines.append(f"      inputs: {', '.join(block.input_refs)} ({edge})")
        for name, spec in param_specs(block.factory).items():
            if spec.python_only:
                continue
            if name in block.params:
                value, note = block.params[name], ""
            else:
                value, note = ("(required)" if spec.required else spec.default), "  (default)"
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            unit = (f" {spec.unit}" if numeric and isinstance(spec.unit, str)
                    and spec.unit != "count" else "")
            lines.append(f"      {name} = {value!r}{unit}{note}")
    return "\n".join(lines) + "\n"
