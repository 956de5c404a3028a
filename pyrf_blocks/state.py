"""
How blocks put arrays into their state (:class:`~pyrf_blocks.interfaces.IStateful`):
raw bytes with their dtype and shape, which msgpack carries as one ``bin``.
A list of floats costs about 9 bytes and a Python object per value to write
and read; this costs a copy, so a 100 MiB hold snapshots at memory speed.
"""

import numpy as np

__all__ = ["pack_array", "unpack_array"]


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
