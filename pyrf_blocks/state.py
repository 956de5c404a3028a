"""
How blocks put arrays into their state (:class:`~pyrf_blocks.interfaces.IStateful`):
raw bytes with their dtype and shape, which msgpack carries as one ``bin``.
A list of floats costs about 9 bytes and a Python object per value to write
and read; this costs a copy, so a 100 MiB hold snapshots at memory speed.
"""

import numpy as np

__all__ = ["pack_array", "unpack_array", "pack_generator", "restore_generator", "plain",
           "check_version"]


def pack_array(array):
    """``array`` (or None) as msgpack-encodable data."""
    if array is None:
        return None
    array = np.ascontiguousarray(array)
    if array.dtype.fields is not None or array.dtype.hasobject:
        raise TypeError(f"pack_array takes plain numeric arrays, not {array.dtype}")
    return {"dtype": array.dtype.str, "shape": list(array.shape), "data": array.tobytes()}


def unpack_array(state):
    """The array :func:`pack_array` packed (a writable copy), or None."""
    if state is None:
        return None
    array = np.frombuffer(state["data"], dtype=np.dtype(state["dtype"]))
    return array.reshape(state["shape"]).copy()


def plain(value):
    """
    ``value`` (a chunk's meta, say) as msgpack gives it back: tuples become
    lists, numpy scalars Python numbers.  A block that keeps a meta in its
    state compares the next chunk's ``plain(meta)`` with it.
    """
    import msgpack

    def default(item):
        if isinstance(item, np.generic):
            return item.item()
        raise TypeError(f"cannot keep a {type(item).__name__} in a state")

    return msgpack.unpackb(msgpack.packb(value, default=default, use_bin_type=True),
                           raw=False, strict_map_key=False)


def check_version(block, state, version, unversioned=None):
    """
    Refuse (``ValueError`` naming ``block``) a state of another version.

    :param unversioned: the version a state without one is read as (for a
        block whose states had no version before), or None to refuse it.
    """
    found = state.get("version", unversioned) if isinstance(state, dict) else None
    if found != version:
        raise ValueError(f"{block.label}: a state of version {found!r}; this block reads "
                         f"version {version}")


def pack_generator(rng):
    """
    The state of a ``numpy.random.Generator`` as msgpack-encodable data:
    its bit generator's state with every integer written as text (PCG64's
    are 128-bit; msgpack holds 64).
    """
    return _text_ints(rng.bit_generator.state)


def restore_generator(rng, state):
    """Put ``rng`` back in the state :func:`pack_generator` returned."""
    rng.bit_generator.state = _int_texts(state)


def _text_ints(value):
    if isinstance(value, dict):
        return {k: _text_ints(v) for k, v in value.items()}
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


def _int_texts(value):
    if isinstance(value, dict):
        return {k: _int_texts(v) for k, v in value.items()}
    return int(value) if isinstance(value, str) and value.lstrip("-").isdigit() else value
