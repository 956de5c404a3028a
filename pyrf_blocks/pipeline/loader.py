"""
Reading a pipeline file: YAML to plain Python data, keeping the line and
column of every key and value so that each message can point at its line.

YAML 1.2 (ruamel.yaml): ``yes`` and ``no`` stay strings, ``1e6`` is a
number.  A key written twice is a mistake, not a silent overwrite.
"""

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode

from .problems import PipelineError, Problem

__all__ = ["Document", "load_document", "read_document"]


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


def _position(node):
    return node.start_mark.line + 1, node.start_mark.column + 1


def load_document(text, filename="<pipeline>"):
    """
    Parse YAML ``text`` into a :class:`Document`.

    :raises PipelineError: for a syntax error or a duplicate key.
    """
    yaml = YAML(typ="safe", pure=True)
    try:
        root = yaml.compose(text)
    except MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        line, column = (mark.line + 1, mark.column + 1) if mark else (0, 0)
        raise PipelineError([Problem(f"YAML syntax: {error.problem}", line, column,
                                     filename)]) from None
    except YAMLError as error:
        raise PipelineError([Problem(f"YAML syntax: {error}", 0, 0, filename)]) from None
    if root is None:
        raise PipelineError([Problem("the file is empty; a pipeline starts "
                                     "with 'version: 1'", 0, 0, filename)])
    values, keys, problems = {}, {}, []

    def build(node, path):
        values[path] = _position(node)
        if not isinstance(node, ScalarNode) and node.tag not in _COLLECTIONS:
            problems.append(Problem(f"the tag {node.tag!r} is not allowed in a "
                                    "pipeline file", *values[path], filename))
            return None
        if isinstance(node, MappingNode):
            result = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, ScalarNode):
                    line, column = _position(key_node)
                    problems.append(Problem("a key must be a plain name", line,
                                            column, filename))
                    continue
                key = yaml.constructor.construct_object(key_node)
                if key in result:
                    line, column = _position(key_node)
                    first = keys[path + (key,)][0]
                    problems.append(Problem(f"{key!r} is written twice (first on "
                                            f"line {first})", line, column, filename))
                    continue
                keys[path + (key,)] = _position(key_node)
                result[key] = build(value_node, path + (key,))
            return result
        if isinstance(node, SequenceNode):
            return [build(item, path + (index,)) for index, item in enumerate(node.value)]
        try:
            return yaml.constructor.construct_object(node)
        except YAMLError as error:
            line, column = _position(node)
            reason = getattr(error, "problem", None) or str(error)
            problems.append(Problem(f"cannot read {node.value!r}: {reason}", line,
                                    column, filename))
            return None

    data = build(root, ())
    if problems:
        raise PipelineError(problems)
    return Document(data, filename, values, keys)


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
