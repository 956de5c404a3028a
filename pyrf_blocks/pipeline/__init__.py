"""
Pipelines as files: a versioned YAML format describing blocks, their
parameters (with units), connections, edge policies and placement; checked
completely with messages that point at the line; built into a graph; and
written back from a graph built in Python.

>>> from pyrf_blocks.pipeline import load_pipeline, build
>>> graph = build(load_pipeline("examples/spectrum.yaml"))  # doctest: +SKIP
"""

from .build import build
from .export import describe, graph_to_data, graph_to_dot, graph_to_yaml, pipeline_to_dot
from ..errors import PipelineError, UnitError
from .problems import Problem
from ..units import format_quantity, parse_quantity
from .validate import Pipeline, check, check_file, check_text

__all__ = ["load_pipeline", "check", "check_file", "check_text", "build",
           "Pipeline", "PipelineError", "Problem", "graph_to_yaml",
           "graph_to_data", "graph_to_dot", "pipeline_to_dot", "describe",
           "parse_quantity", "format_quantity", "UnitError"]


def load_pipeline(path):
    """
    Read and check the pipeline file at ``path``.

    :raises PipelineError: listing every problem, each at its line.
    """
    return check_file(path)
