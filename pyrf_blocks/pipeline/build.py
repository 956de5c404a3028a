"""
Building a checked pipeline into a :class:`~pyrf_blocks.graph.Graph`.
"""

import os

from ..graph import Graph
from ..interfaces import ISink
from .problems import PipelineError
from .validate import LOCAL

__all__ = ["build"]


def _placement_problems(pipeline, environ):
    problems = []
    for name, process in pipeline.processes.items():
        if process.token_env and process.token_env not in environ:
            problems.append(pipeline.problem(
                f"process {name!r}: the environment variable {process.token_env} "
                "(token_env) is not set", ("processes", name, "token_env")))
    for name, process in pipeline.processes.items():
        placed = [b.name for b in pipeline.blocks.values() if b.proc == name]
        if name != LOCAL and placed:
            where = process.url if process.kind == "remote" else "a child process"
            problems.append(pipeline.problem(
                f"process {name!r} ({where}) runs {', '.join(placed)}: running blocks "
                "outside this process from a pipeline file is not available in this "
                "version; remove their 'proc' to run them here", ("processes", name)))
    return problems


def build(pipeline, graph=None, environ=None):
    """
    Make the blocks of ``pipeline`` in ``graph`` (a new one by default) and
    return the graph.  Sinks connect as they are made, so the sources start
    once the graph's reactor runs.

    A block that rejects its parameters (a value out of range) is reported
    at its line, together with every other such block, and nothing is left
    running.

    :param environ: where ``token_env`` variables are read (``os.environ``).
    :raises PipelineError: for placement that cannot be honoured or values
        the blocks reject.
    """
    graph = graph if graph is not None else Graph()
    problems = _placement_problems(pipeline, os.environ if environ is None else environ)
    if problems:
        raise PipelineError(problems)
    made = {}
    for name, block in pipeline.blocks.items():
        if not all(upstream in made for upstream in block.inputs):
            continue  # an input failed: reported there
        inputs = [made[upstream] for upstream in block.inputs]
        edges = {}
        if block.policy != "block":
            edges["policy"] = block.policy
        if block.maxsize is not None:
            edges["maxsize"] = block.maxsize
        try:
            made[name] = block.factory(*inputs, name=name, graph=graph, **edges,
                                       **block.params)
        except Exception as error:  # a block refusing its values, in its own words
            reason = (str(error) if isinstance(error, (TypeError, ValueError))
                      else f"{type(error).__name__}: {error}")
            problems.append(pipeline.problem(
                f"block {name!r} ({block.type_name}): {reason}",
                ("blocks", name, "params") if block.params else ("blocks", name)))
    if problems:
        for made_block in made.values():
            if ISink.providedBy(made_block):
                made_block.close()
        raise PipelineError(problems)
    return graph
