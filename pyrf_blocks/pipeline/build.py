"""
Building a checked pipeline into a :class:`~pyrf_blocks.graph.Graph`.
"""

import os

from ..block import MAIN
from ..errors import PipelineError
from ..graph import Graph
from ..interfaces import ISink
from .validate import LOCAL, SENSOR_PIPELINE_PARAMS

__all__ = ["build"]


def _token_problems(pipeline, environ):
    return [pipeline.problem(f"process {name!r}: the environment variable "
                             f"{process.token_env} (token_env) is not set",
                             ("processes", name, "token_env"))
            for name, process in pipeline.processes.items()
            if process.token_env and process.token_env not in environ]


def _ca_path(pipeline, spec):
    """
    A remote process's ``ca`` file: relative paths start from the folder of
    the pipeline file.
    """
    if spec.ca is None:
        return None
    folder = "" if pipeline.filename.startswith("<") else os.path.dirname(pipeline.filename)
    return os.path.join(folder, os.path.expanduser(spec.ca))


def _trusted_cas(pipeline):
    """
    ``({process name: PEM certificates}, problems)`` for the remote
    processes that give a ``ca``.
    """
    cas, problems = {}, []
    for name, spec in pipeline.processes.items():
        path = _ca_path(pipeline, spec)
        if path is not None:
            from ..net.tls import read_ca
            try:
                cas[name] = read_ca(path)
            except ValueError as error:
                problems.append(pipeline.problem(f"process {name!r}: {error}",
                                                 ("processes", name, "ca")))
    return cas, problems


def _places(pipeline, graph, environ, cas):
    """
    ``{process name: place}`` for every process that runs blocks, made with
    :func:`pyrf_blocks.net.placement.process`: child processes start now.
    """
    used = [name for name in pipeline.processes
            if name != LOCAL and any(b.proc == name for b in pipeline.blocks.values())]
    if not used:
        return {}
    from ..net import process

    places = {}
    for name in used:
        spec = pipeline.processes[name]
        if spec.kind == "child":
            places[name] = process(reactor=graph.reactor)
        else:
            token = environ[spec.token_env] if spec.token_env else None
            places[name] = process(spec.url, token=token, ca=cas.get(name),
                                   reactor=graph.reactor)
    return places


def _with_sensor_pipelines(pipeline, block):
    """
    ``block``'s parameters, where one that names a sensor pipeline of the
    same file (``sensor_store``'s ``pipeline: kpi``) is given that
    pipeline, new for this block.
    """
    params = block.params
    if block.type_name != "sensor_store":
        return params
    for key in SENSOR_PIPELINE_PARAMS:
        value = params.get(key)
        if isinstance(value, str) and value in pipeline.sensors:
            params = dict(params, **{key: pipeline.sensor_pipeline(value)})
    return params


def build(pipeline, graph=None, environ=None):
    """
    Make the blocks of ``pipeline`` in ``graph`` (a new one by default) and
    return the graph.  Sinks connect as they are made, so the sources start
    once the graph's reactor runs.

    A block that rejects its parameters (a value out of range) is reported
    at its line, together with every other such block, and nothing is left
    running.

    Blocks with a ``proc`` run in a child process or on a remote worker
    (:mod:`pyrf_blocks.net`), created there when something here first
    consumes them; a remote worker's token is read from its ``token_env``,
    and the CA certificate of an ``https://`` worker from its ``ca`` file.

    :param environ: where ``token_env`` variables are read (``os.environ``).
    :raises PipelineError: for a token that is not set, a ``ca`` file that
        cannot be read, placement this installation cannot honour, or
        values the blocks reject.
    """
    graph = graph if graph is not None else Graph()
    environ = os.environ if environ is None else environ
    cas, ca_problems = _trusted_cas(pipeline)
    problems = _token_problems(pipeline, environ) + ca_problems
    if problems:
        raise PipelineError(problems)
    places = _places(pipeline, graph, environ, cas)
    made = {}
    for name, block in pipeline.blocks.items():
        if not all(upstream in made for upstream in block.inputs):
            continue  # an input failed: reported there
        inputs = [made[upstream] if output == MAIN else made[upstream].output(output)
                  for upstream, output in zip(block.inputs, block.input_outputs)]
        options = {}
        if block.policy != "block":
            options["policy"] = block.policy
        if block.maxsize is not None:
            options["maxsize"] = block.maxsize
        if block.proc != LOCAL:
            options["proc"] = places[block.proc]
        params = _with_sensor_pipelines(pipeline, block)
        try:
            made[name] = block.factory(*inputs, name=name, graph=graph, **options, **params)
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
        for place in places.values():
            place.close()
        raise PipelineError(problems)
    for name in pipeline.mqtt_sensors:
        # Not blocks, but part of the file: kept for graph_to_yaml.
        graph.sensor_pipelines[name] = pipeline.sensor_pipeline(name)
    return graph
