"""
Reading a pipeline file: YAML to plain Python data, keeping the line and
column of every key and value so that each message can point at its line.

YAML 1.2 (ruamel.yaml): ``yes`` and ``no`` stay strings, ``1e6`` is a
number.  A key written twice is a mistake, not a silent overwrite.

A file nesting deeper than :data:`MAX_DEPTH` collections is refused while it
is scanned.  Waiting for Python's recursion limit instead took 2.7-8 s for
5 000 nested ``[``: ruamel's scanner keeps a possible simple key per open
flow collection (up to 1 024 characters back) and checks all of them at
every token; stopping at 100 levels refuses it in milliseconds, at the same
depth wherever the loader is called from.
"""

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.scanner import Scanner

from ..errors import PipelineError
from .problems import Problem, shown

__all__ = ["Document", "MAX_DEPTH", "load_document", "read_document"]

#: Collections nested deeper than this are refused (a pipeline needs a handful).
MAX_DEPTH = 100

_TOO_DEEP = "the file nests too deeply to be a pipeline"


class _TooDeep(Exception):
    pass


class _DepthLimitedScanner(Scanner):
    """
    ruamel's safe scanner, stopping at the first collection that opens deeper
    than :data:`MAX_DEPTH` (flow ``[``/``{`` and block indentation together).
    """

    def _check_depth(self):
        if self.flow_level + len(self.indents) > MAX_DEPTH:
            raise _TooDeep()

    def fetch_flow_collection_start(self, TokenClass, to_push):
        super().fetch_flow_collection_start(TokenClass, to_push)
        self._check_depth()

    def add_indent(self, column):
        added = super().add_indent(column)
        self._check_depth()
        return added


class Document:
    """
    A parsed file: ``data`` (plain dicts, lists and scalars) and where each
    part of it was written.
    """

    def __init__(self, data, filename, values, keys):
        self.data = data
        self.filename = filename
        self._values = values
        self._keys = keys

    def locate(self, path, key=False):
        """
        ``(line, column)``, 1-based, of the value at ``path`` (a tuple of
        keys and indices), or of its key with ``key=True``.  A path that
        does not exist (a missing field) points at its nearest parent.
        """
        path = tuple(path)
        if key and path in self._keys:
            return self._keys[path]
        while path:
            if path in self._values:
                return self._values[path]
            path = path[:-1]
        return self._values.get((), (1, 1))

    def problem(self, message, path=(), key=False):
        """
        A :class:`Problem` at ``path``.
        """
        line, column = self.locate(path, key)
        return Problem(message, line, column, self.filename)


_COLLECTIONS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:seq")
_MERGE = "tag:yaml.org,2002:merge"


def _position(node):
    return node.start_mark.line + 1, node.start_mark.column + 1


def load_document(text, filename="<pipeline>"):
    """
    Parse YAML ``text`` into a :class:`Document`.

    :raises PipelineError: for a syntax error or a duplicate key.
    """
    yaml = YAML(typ="safe", pure=True)
    yaml.Scanner = _DepthLimitedScanner
    try:
        root = yaml.compose(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise PipelineError([Problem(f"YAML syntax: {error.problem}", line, column,
                                     filename)]) from None
    except YAMLError as error:
        raise PipelineError([Problem(f"YAML syntax: {error}", 0, 0, filename)]) from None
    except (_TooDeep, RecursionError):
        raise PipelineError([Problem(_TOO_DEEP, 0, 0, filename)]) from None
    if root is None:
        raise PipelineError([Problem("the file is empty; a pipeline starts "
                                     "with 'version: 1'", 0, 0, filename)])
    builder = _Builder(yaml.constructor, filename)
    try:
        data = builder.build(root, ())
    except RecursionError:  # an alias inside its own anchor: &a [*a]
        raise PipelineError([Problem(_TOO_DEEP, 0, 0, filename)]) from None
    if builder.problems:
        raise PipelineError(builder.problems)
    return Document(data, filename, builder.values, builder.keys)


class _Builder:
    """
    Plain data from composed YAML nodes, noting where each part was written.

    A node shared through an anchor is built once, so aliases cannot blow a
    small file up into a huge one; ``<<: *anchor`` merges a mapping's keys
    (those written beside it win).
    """

    def __init__(self, constructor, filename):
        self.constructor = constructor
        self.filename = filename
        self.values, self.keys, self.problems = {}, {}, []
        self._built = {}

    def problem(self, message, node):
        self.problems.append(Problem(message, *_position(node), self.filename))

    def build(self, node, path):
        self.values[path] = _position(node)
        if id(node) in self._built:
            return self._built[id(node)]
        if isinstance(node, ScalarNode):
            result = self.scalar(node)
        elif node.tag not in _COLLECTIONS:
            self.problem(f"the tag {node.tag!r} is not allowed in a pipeline file", node)
            result = None
        elif isinstance(node, MappingNode):
            result = self.mapping(node, path)
        else:
            result = [self.build(item, path + (index,)) for index, item in enumerate(node.value)]
        self._built[id(node)] = result
        return result

    def scalar(self, node):
        try:
            return self.constructor.construct_object(node)
        except (YAMLError, ValueError) as error:  # ValueError: an integer too long
            reason = getattr(error, "problem", None) or str(error)
            self.problem(f"cannot read {shown(node.value)}: {reason}", node)
            return None

    def mapping(self, node, path):
        result, merged = {}, {}
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                self.merge(value_node, path, merged)
                continue
            if not isinstance(key_node, ScalarNode):
                self.problem("a key must be a plain name", key_node)
                continue
            key = self.scalar(key_node)
            if key in result:
                first = self.keys[path + (key,)][0]
                self.problem(f"{key!r} is written twice (first on line {first})", key_node)
                continue
            self.keys[path + (key,)] = _position(key_node)
            result[key] = self.build(value_node, path + (key,))
        for key, value in merged.items():
            result.setdefault(key, value)
        return result

    def merge(self, node, path, merged):
        sources = node.value if isinstance(node, SequenceNode) else [node]
        for source in sources:
            if not isinstance(source, MappingNode):
                self.problem("'<<' merges mappings only", source)
                continue
            for key, value in self.build(source, path + ("<<",)).items():
                merged.setdefault(key, value)
            # Merged keys point at where they were written, in the anchor.
            for key_node, value_node in source.value:
                if isinstance(key_node, ScalarNode) and key_node.tag != _MERGE:
                    key_path = path + (self.scalar(key_node),)
                    self.keys.setdefault(key_path, _position(key_node))
                    self.values.setdefault(key_path, _position(value_node))


def read_document(path):
    """
    Read and parse the file at ``path``.

    :raises PipelineError: if it cannot be read or parsed.
    """
    try:
        with open(path, encoding="utf-8") as stream:
            text = stream.read()
    except (OSError, UnicodeDecodeError) as error:
        reason = getattr(error, "strerror", None) or str(error)
        raise PipelineError([Problem(f"cannot read the file: {reason}", 0, 0,
                                     str(path))]) from None
    return load_document(text, str(path))
