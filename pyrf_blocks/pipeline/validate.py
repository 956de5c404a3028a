"""
Checking a pipeline file completely, in one pass: every mistake is
collected, each pointing at its line and column.

Checked: the schema (fields, the version, names), block types (an unknown
one with the closest known name), parameters (missing, unknown, wrong type
or unit, and every rule the block declares: ranges, choices, its own
checks, see :mod:`pyrf_blocks.params`), inputs (unknown names, how many, a sink used as an input),
interface contracts (what each input provides against what the block
requires), cycles, and placement (unknown processes).  Nothing is built and
no block runs: checking a file has no side effects.
"""

import difflib

from pydantic import ValidationError
from zope.interface import implementedBy

from ..block import MAIN, Block, output_kinds, reference, split_reference
from ..errors import FieldError, PipelineError, UnknownBlockType
from ..interfaces import KIND_INTERFACES, ISink
from ..params import relation_problems
from ..registry import lookup
from .loader import read_document, load_document
from .problems import Problem, shown
from .schema import SUPPORTED_VERSION, BlockSpec, PipelineSpec, ProcessSpec, params_model

__all__ = ["Pipeline", "PipelineBlock", "check", "check_file", "check_text",
           "LOCAL"]

#: The process every pipeline has: the one reading the file.
LOCAL = "local"
#: Parameters of sensor_store that may name a sensor pipeline of the same file.
SENSOR_PIPELINE_PARAMS = ("pipeline",)


class PipelineBlock:
    """
    One checked block: its factory, converted parameters (those written in
    the file), input names, edge policy, process and output kind (``None``
    for a sink).
    """

    def __init__(self, name, spec, factory, params, kind):
        self.name = name
        self.type_name = spec.type
        self.factory = factory
        self.params = params
        #: The names of the blocks it consumes, in order ...
        self.inputs = tuple(split_reference(ref)[0] for ref in spec.inputs)
        #: ... and which output of each ("main" unless ``name:output``).
        self.input_outputs = tuple(split_reference(ref)[1] for ref in spec.inputs)
        self.policy = spec.policy
        self.maxsize = spec.maxsize
        self.proc = spec.proc
        self.kind = kind

    def __repr__(self):
        return f"<PipelineBlock {self.type_name} {self.name!r}>"

    @property
    def is_sink(self):
        return self.kind is None

    @property
    def input_refs(self):
        """
        The inputs as the file writes them: ``name``, or ``name:output``.
        """
        return tuple(map(reference, self.inputs, self.input_outputs))


class Pipeline:
    """
    A checked pipeline, ready to build: ``blocks`` in an order where every
    block comes after its inputs, and the declared ``processes``.
    """

    def __init__(self, blocks, processes, description=None, document=None, sensors=()):
        self.blocks = blocks
        self.processes = processes
        self.description = description
        self.document = document
        self.filename = document.filename if document is not None else "<pipeline>"
        #: The names of the sensor pipelines written beside the blocks.
        self.sensors = tuple(sensors)

    def __repr__(self):
        return f"<Pipeline {self.filename} of {len(self.blocks)} blocks>"

    @property
    def sinks(self):
        return tuple(block for block in self.blocks.values() if block.is_sink)

    def problem(self, message, path=()):
        """
        A :class:`~pyrf_blocks.pipeline.problems.Problem` at ``path`` of the
        file this pipeline was read from.
        """
        if self.document is None:
            return Problem(message)
        return self.document.problem(message, path)

    def sensor_pipeline(self, name):
        """
        A new :class:`~pyrf_blocks.sensors.pipeline.SensorPipeline` of the
        file's sensor pipeline ``name`` (one of :attr:`sensors`): each
        block that keeps rows through it gets its own state.
        """
        from ..sensors.spec import sensor_sections

        return sensor_sections(self.document)[0][name]

    @property
    def mqtt_sensors(self):
        """
        The names of the sensor pipelines written beside the blocks that no
        block keeps rows through (``sensor_store``'s ``pipeline``): their
        messages come from MQTT (``pyrf-blocks run`` serves them).
        """
        named = {block.params.get(key) for block in self.blocks.values()
                 if block.type_name == "sensor_store" for key in SENSOR_PIPELINE_PARAMS}
        return tuple(name for name in self.sensors if name not in named)

    def consumers(self, name):
        """
        The blocks that take ``name`` as an input.
        """
        return tuple(b for b in self.blocks.values() if name in b.inputs)

    def active_blocks(self):
        """
        The names of the blocks that will run: sinks and, lazily, every
        block something running consumes.
        """
        active = set()
        pending = [b.name for b in self.sinks]
        while pending:
            name = pending.pop()
            if name not in active:
                active.add(name)
                pending.extend(self.blocks[name].inputs)
        return active


_PATTERN_WORDS = {
    "url": "an http:// or https:// URL",
    "token_env": "an environment variable name (letters, digits and '_')",
    "proc": "a process name",
}


def _label(name, block_data):
    """
    How messages name a block: ``block 'fft' (fft_block)``.
    """
    type_name = block_data.get("type") if isinstance(block_data, dict) else None
    return f"block {name!r}" + (f" ({type_name})" if isinstance(type_name, str) else "")


def _closest(word, choices):
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


class _Checker:
    """
    One pass over a document, collecting problems.
    """

    def __init__(self, document):
        self.document = document
        self.problems = []

    def problem(self, message, path, key=False):
        self.problems.append(self.document.problem(message, path, key))

    def schema_errors(self, error, prefix, what, fields):
        """
        Turn a pydantic ``ValidationError`` into problems at their lines.

        :param what: how messages name the thing (``"block 'fft'"``).
        :param fields: the field names it takes, for unknown-field messages.
        """
        for item in error.errors():
            loc = prefix + tuple(item["loc"])
            kind = item["type"]
            field = ".".join(str(part) for part in item["loc"])
            cause = (item.get("ctx") or {}).get("error")
            if isinstance(cause, FieldError):
                loc += (cause.field,)
                self.problem(f"{what}: {cause}", loc, key=True)
            elif kind == "extra_forbidden":
                name = item["loc"][-1]
                self.problem(f"{what}: unknown field {name!r}{_closest(name, fields)} "
                             f"(fields: {', '.join(fields)})", loc, key=True)
            elif kind == "missing":
                self.problem(f"{what}: missing field {field!r}", loc)
            elif kind == "value_error":
                self.problem(f"{what}: {field + ': ' if field else ''}{cause}", loc)
            elif kind == "literal_error":
                self.problem(f"{what}: {field}: {shown(item['input'])} is not one of "
                             f"{item['ctx']['expected']}", loc)
            elif kind == "string_pattern_mismatch":
                if loc[-1] == "[key]":
                    self.problem(f"{what}: {shown(item['input'])} is not a valid name "
                                 "(letters, digits, '_', '-' and '.', not starting "
                                 "with a digit)", loc[:-1], key=True)
                else:
                    wanted = _PATTERN_WORDS.get(loc[-1], "a valid name")
                    self.problem(f"{what}: {field}: {shown(item['input'])} is not {wanted}", loc)
            else:
                self.problem(f"{what}: {field + ': ' if field else ''}{item['msg']}", loc)

    def param_errors(self, error, name, what, type_name, names):
        for item in error.errors():
            param = item["loc"][0]
            loc = ("blocks", name, "params", param)
            if item["type"] == "extra_forbidden":
                self.problem(f"{what}: unknown parameter {param!r}"
                             f"{_closest(param, names)} ({type_name} takes: "
                             f"{', '.join(names) or 'no parameters'})", loc, key=True)
            elif item["type"] == "missing":
                self.problem(f"{what}: missing parameter {param!r}",
                             ("blocks", name, "params"))
            else:
                cause = (item.get("ctx") or {}).get("error")
                self.problem(f"{what}: {cause or item['msg']}", loc)


def output_kind_of(factory, input_kinds):
    """
    The kind a block type emits, from its class: ``None`` for a sink,
    ``"?"`` when it cannot be told without building the block.
    """
    if ISink.implementedBy(factory):
        return None
    kind = getattr(factory, "kind", None)
    if kind is not None:
        return kind
    if (isinstance(factory, type) and issubclass(factory, Block)
            and factory.output_kind is not Block.output_kind and input_kinds):
        # A pass-through block (decimate) emits its first input's kind.
        return input_kinds[0]
    return "?"


def _provides(factory, kind, iface):
    if kind not in (None, "?") and KIND_INTERFACES[kind].isOrExtends(iface):
        return True
    return isinstance(factory, type) and implementedBy(factory).isOrExtends(iface)


def _provided_names(factory, kind):
    names = {iface.__name__ for iface in KIND_INTERFACES.values()
             if _provides(factory, kind, iface)}
    return ", ".join(sorted(names)) or "no producer interface"


def _topological(names, inputs_of):
    """
    ``names`` ordered so that inputs come first (file order otherwise), and
    the cycles found, each as a list of names.
    """
    order, cycles, state = [], [], {}

    def visit(name, trail):
        if state.get(name) == "done":
            return
        if state.get(name) == "open":
            cycle = trail[trail.index(name):-1]
            if not any(set(cycle) == set(seen) for seen in cycles):
                cycles.append(cycle)
            return
        state[name] = "open"
        for upstream in inputs_of(name):
            visit(upstream, trail + [upstream])
        state[name] = "done"
        order.append(name)

    for name in names:
        visit(name, [name])
    return order, cycles


class _FlowChecker(_Checker):
    """
    The checks, in the order a reader would make them: the file's top level,
    its processes, each block on its own, then how the blocks connect.
    """

    def __init__(self, document):
        super().__init__(document)
        self.processes = {LOCAL: ProcessSpec(kind="local")}
        self.raw_blocks = {}
        self.specs, self.factories, self.params, self.kinds = {}, {}, {}, {}
        self.description = None

    def what(self, name):
        return _label(name, self.raw_blocks.get(name))

    def top_level(self):
        """
        Return False when the rest of the file cannot be read as version 1.
        """
        data = self.document.data
        if not isinstance(data, dict):
            self.problem("a pipeline file is a mapping that starts with 'version: 1'", ())
            return False
        try:
            self.description = PipelineSpec.model_validate(data).description
        except ValidationError as error:
            self.schema_errors(error, (), "pipeline", list(PipelineSpec.model_fields))
            version = data.get("version")
            if version != SUPPORTED_VERSION or isinstance(version, bool):
                return False  # another version may mean anything else
        raw_blocks = data.get("blocks")
        self.raw_blocks = raw_blocks if isinstance(raw_blocks, dict) else {}
        return True

    def declared_processes(self):
        raw_processes = self.document.data.get("processes")
        for name, raw in (raw_processes.items() if isinstance(raw_processes, dict) else ()):
            what = f"process {name!r}"
            if name == LOCAL and raw not in ("local", {"kind": "local"}):
                self.problem(f"{what}: 'local' is this process; it cannot be "
                             "redeclared", ("processes", name), key=True)
                continue
            try:
                self.processes[name] = ProcessSpec.model_validate(raw)
            except ValidationError as error:
                self.processes[name] = None  # declared, though wrongly
                self.schema_errors(error, ("processes", name), what,
                                   list(ProcessSpec.model_fields))

    def block(self, name, raw):
        """
        The block's own fields: schema, type, parameters and process.
        """
        what = self.what(name)
        try:
            spec = self.specs[name] = BlockSpec.model_validate(raw)
        except ValidationError as error:
            self.schema_errors(error, ("blocks", name), what, list(BlockSpec.model_fields))
            return
        try:
            self.factories[name] = lookup(spec.type)
        except UnknownBlockType as error:
            self.problem(f"{what}: {error}", ("blocks", name, "type"))
            return
        model = params_model(spec.type)
        try:
            given = model.model_validate(spec.params)
            self.params[name] = {key: getattr(given, key) for key in given.model_fields_set}
            for param, message in relation_problems(self.factories[name], self.params[name]):
                self.problem(f"{what}: {message}", ("blocks", name, "params", param))
        except ValidationError as error:
            self.param_errors(error, name, what, spec.type, list(model.model_fields))
        if spec.proc not in self.processes:
            self.problem(f"{what}: unknown process {spec.proc!r}"
                         f"{_closest(spec.proc, self.processes)} "
                         f"(declared: {', '.join(self.processes)})", ("blocks", name, "proc"))

    def flow(self):
        """
        Cycles, then each block's inputs in flow order; return that order.
        """
        specs = self.specs

        def inputs_of(name):
            spec = specs.get(name)
            # A block listed as its own input is reported on its own.
            names = [split_reference(ref)[0] for ref in spec.inputs] if spec else []
            return [i for i in names if i in specs and i != name]

        names = list(self.raw_blocks)
        order, cycles = _topological(names, inputs_of)
        in_cycle = set()
        for cycle in cycles:
            in_cycle.update(cycle)
            first = min(cycle, key=names.index)
            loop = cycle[cycle.index(first):] + cycle[:cycle.index(first)]
            self.problem(f"block {first!r}: blocks {' -> '.join(reversed(loop + [first]))} "
                         "form a cycle; a pipeline must flow one way",
                         ("blocks", first, "inputs"))
        for name in order:
            if name in specs and name in self.factories and name not in in_cycle:
                if self.inputs(name):
                    self.kinds[name] = output_kind_of(
                        self.factories[name],
                        [self.input_kind(ref) for ref in specs[name].inputs])
        return order

    def input_kind(self, ref):
        """
        The kind of the input ``ref`` (``name`` or ``name:output``).
        """
        upstream, output = split_reference(ref)
        if output == MAIN:
            return self.kinds[upstream]
        return output_kinds(self.factories[upstream], self.kinds[upstream])[output]

    def inputs(self, name):
        """
        Report the inputs of one block that are unknown, too many or too
        few, or break its interface contract; return whether all were fine.
        """
        spec, factory, what = self.specs[name], self.factories[name], self.what(name)
        ok = True
        for index, ref in enumerate(spec.inputs):
            where = ("blocks", name, "inputs", index)
            upstream, output = split_reference(ref)
            if upstream not in self.raw_blocks:
                self.problem(f"{what}: input {upstream!r} is not a block of this file"
                             f"{_closest(upstream, self.raw_blocks)}", where)
                ok = False
            elif upstream == name:
                self.problem(f"{what}: a block cannot be its own input", where)
                ok = False
            elif upstream not in self.kinds:
                ok = False  # the upstream block has problems of its own
            elif output != MAIN:
                outputs = output_kinds(self.factories[upstream], self.kinds[upstream])
                if output not in outputs:
                    self.problem(f"{what}: input {ref!r}: {self.what(upstream)} has no "
                                 f"output {output!r}; it has "
                                 f"{', '.join(map(repr, outputs)) or 'none'}", where)
                    ok = False
        requires = tuple(getattr(factory, "requires", ()))
        variadic = getattr(factory, "variadic", False)
        count = len(spec.inputs)
        if variadic and count == 0:
            self.problem(f"{what}: needs at least one input", ("blocks", name, "inputs"))
            return False
        if not variadic and count != len(requires):
            wanted = ("no inputs (it is a source)" if not requires
                      else f"{len(requires)} input{'s' if len(requires) > 1 else ''} "
                      f"({', '.join(i.__name__ for i in requires)})")
            self.problem(f"{what}: takes {wanted}, got {count}",
                         ("blocks", name, "inputs") if "inputs" in self.raw_blocks[name]
                         else ("blocks", name), key=True)
            return False
        if not ok:
            return False
        needed = requires * count if variadic else requires
        for index, (ref, iface) in enumerate(zip(spec.inputs, needed)):
            upstream, output = split_reference(ref)
            kind = self.input_kind(ref)
            # A block type's own interfaces are those of its main output.
            upstream_factory = self.factories[upstream] if output == MAIN else None
            producer = self.what(upstream) + ("" if output == MAIN else f" output {output!r}")
            if kind == "?":
                continue  # only the built block can tell; the graph checks it then
            if kind is None:
                self.problem(f"{what}: input {index + 1} is {producer}, a "
                             "sink: it produces nothing", ("blocks", name, "inputs", index))
                ok = False
            elif not _provides(upstream_factory, kind, iface):
                self.problem(f"{what}: input {index + 1} must provide {iface.__name__}, "
                             f"but {producer} provides "
                             f"{_provided_names(upstream_factory, kind)}",
                             ("blocks", name, "inputs", index))
                ok = False
        return ok

    def sensor_pipelines(self):
        """
        Check the sensor pipelines written beside the blocks (``pipeline``,
        ``pipelines``) and the blocks' references to them; their names.
        """
        data = self.document.data
        if data.get("pipeline") is None and data.get("pipelines") is None:
            names = ()
        else:
            # Imported here: pyrf_blocks.sensors.spec reads files with this
            # package's loader.
            from ..sensors.spec import sensor_sections

            found, problems = sensor_sections(self.document)
            self.problems.extend(problems)
            names = tuple(found)
        for name, raw in self.raw_blocks.items():
            params = raw.get("params") if isinstance(raw, dict) else None
            if not isinstance(raw, dict) or raw.get("type") != "sensor_store" or \
                    not isinstance(params, dict):
                continue
            for key in SENSOR_PIPELINE_PARAMS:
                value = params.get(key)
                if isinstance(value, str) and value not in names and \
                        not value.endswith((".yaml", ".yml")):
                    known = f"; this file's: {', '.join(names)}" if names else \
                        "; write one under 'pipelines' or give a .yaml file"
                    self.problem(f"{self.what(name)}: {key}: no sensor pipeline {value!r}"
                                 f"{_closest(value, names)}{known}",
                                 ("blocks", name, "params", key))
        return names


def check(document):
    """
    Check a :class:`~pyrf_blocks.pipeline.loader.Document`.

    :return: the :class:`Pipeline`.
    :raises PipelineError: listing every problem found.
    """
    checker = _FlowChecker(document)
    if not checker.top_level():
        raise PipelineError(checker.problems)
    checker.declared_processes()
    for name, raw in checker.raw_blocks.items():
        checker.block(name, raw)
    order = checker.flow()
    sensors = checker.sensor_pipelines()
    if checker.problems:
        raise PipelineError(checker.problems)
    blocks = {name: PipelineBlock(name, checker.specs[name], checker.factories[name],
                                  checker.params[name], checker.kinds[name])
              for name in order}
    return Pipeline(blocks, checker.processes, checker.description, document, sensors)


def check_text(text, filename="<pipeline>"):
    """
    Parse and check YAML ``text``; see :func:`check`.
    """
    return check(load_document(text, filename))


def check_file(path):
    """
    Read, parse and check the file at ``path``; see :func:`check`.
    """
    return check(read_document(path))
