"""
The registry of block types: the only blocks a worker or a pipeline file
may create by name.  Users add their own with :func:`register`.
"""

import inspect

from .errors import UnknownBlockType

__all__ = ["register", "lookup", "block_types", "parameters", "remote_allowed", "BLOCK_FIELDS"]

_TYPES = {}
_LOCAL_ONLY = set()


def register(factory=None, name=None, remote=True):
    """
    Register a block class (or factory) under ``name`` (its ``type_name``
    by default).  Usable as a decorator, bare or with arguments.  Returns
    ``factory``.

    :param remote: whether a worker may create this type for a remote
        caller.  Types that read or write files on the machine they run on
        (recorders, replays) say ``remote=False``: a worker's HTTP API must
        not become a way to touch its file system.
    """
    if factory is None:
        return lambda actual: register(actual, name=name, remote=remote)
    name = name or getattr(factory, "type_name", None) or factory.__name__
    existing = _TYPES.get(name)
    if existing is not None and existing is not factory:
        raise ValueError(f"block type {name!r} is already registered "
                         f"to {existing.__module__}.{existing.__qualname__}")
    _TYPES[name] = factory
    if remote:
        _LOCAL_ONLY.discard(name)
    else:
        _LOCAL_ONLY.add(name)
    return factory


def remote_allowed(name):
    """
    Whether a worker may create blocks of type ``name`` for a remote caller.
    """
    return name not in _LOCAL_ONLY


def lookup(name):
    """
    The factory registered as ``name``; :class:`UnknownBlockType` (with the
    closest known name) otherwise.
    """
    _load_builtins()
    try:
        return _TYPES[name]
    except (KeyError, TypeError):
        raise UnknownBlockType(name, _TYPES) from None


def block_types():
    """
    Mapping of every registered name to its factory.
    """
    _load_builtins()
    return dict(sorted(_TYPES.items()))


#: Arguments every block takes that are not its parameters: where it sits
#: in a graph (``name``, ``graph``, ``proc``) and how it reads its inputs
#: (``policy``, ``maxsize``), and its compute pool (``parallel``, from
#: Python only: :mod:`pyrf_blocks.parallel`).
BLOCK_FIELDS = frozenset({"name", "graph", "proc", "policy", "maxsize", "parallel"})


def _keyword_parameters(function):
    return {p.name: p.default for p in inspect.signature(function).parameters.values()
            if p.name not in ("self", "producer")
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}


def parameters(factory):
    """
    The keyword parameters a block type takes, as ``{name: default}``
    (``inspect.Parameter.empty`` when required), following ``**kwargs`` to
    the base classes they are passed on to (a source's ``paced``).  Inputs
    and the :data:`BLOCK_FIELDS` are left out.
    """
    if not isinstance(factory, type):
        found = _keyword_parameters(factory)
    else:
        found = {}
        for cls in factory.__mro__:
            init = vars(cls).get("__init__")
            if init is None:
                continue
            for name, default in _keyword_parameters(init).items():
                found.setdefault(name, default)
            kinds = {p.kind for p in inspect.signature(init).parameters.values()}
            if inspect.Parameter.VAR_KEYWORD not in kinds:
                break
    return {name: default for name, default in found.items() if name not in BLOCK_FIELDS}


def _load_builtins():
    # Importing the package registers every built-in block.
    import pyrf_blocks  # noqa: F401
