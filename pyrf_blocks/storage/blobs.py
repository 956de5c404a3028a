"""
Bytes of images, files and videos, kept beside the rows that name them.

:class:`DirectoryBlobs` writes one file per name (``ab/abcdef...``),
flushed to disk and renamed into place before :meth:`put` returns, so a
row that names it is never committed before the bytes are durable; a crash
between the two leaves an unreferenced file that cleanup removes.
:class:`MemoryBlobs` keeps them in a dict, for tests.
"""

import os
import tempfile
import time

from zope.interface import implementer

from ..interfaces import IBlobStore

__all__ = ["DirectoryBlobs", "MemoryBlobs"]


@implementer(IBlobStore)
class DirectoryBlobs:
    """
    Blobs as files under ``path`` (created if missing).
    """

    def __init__(self, path):
        self.path = os.fspath(path)
        os.makedirs(self.path, exist_ok=True)

    def __repr__(self):
        return f"<DirectoryBlobs {self.path!r}>"

    def _file(self, name):
        if not name or not all(c in "0123456789abcdef" for c in name):
            raise KeyError(name)
        return os.path.join(self.path, name[:2], name)

    def put(self, name, data):
        target = self._file(name)
        if os.path.exists(target):
            return
        folder = os.path.dirname(target)
        os.makedirs(folder, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=folder, prefix=".put-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, target)
        except BaseException:
            os.unlink(temporary)
            raise
        directory = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)

    def get(self, name):
        try:
            with open(self._file(name), "rb") as stream:
                return stream.read()
        except FileNotFoundError:
            raise KeyError(name) from None

    def names(self):
        found = set()
        for folder in os.listdir(self.path):
            inner = os.path.join(self.path, folder)
            if len(folder) == 2 and os.path.isdir(inner):
                found.update(n for n in os.listdir(inner) if not n.startswith("."))
        return found

    def remove(self, names, older_than=None):
        removed = 0
        for name in names:
            path = self._file(name)
            try:
                if older_than is not None and os.stat(path).st_mtime >= older_than:
                    continue
                os.unlink(path)
                removed += 1
            except FileNotFoundError:
                pass
        return removed


@implementer(IBlobStore)
class MemoryBlobs:
    """
    Blobs in a dict (with the time each was put), for tests.
    """

    def __init__(self, clock=time.time):
        self._data = {}
        self._clock = clock

    def put(self, name, data):
        self._data.setdefault(name, (bytes(data), self._clock()))

    def get(self, name):
        return self._data[name][0]

    def names(self):
        return set(self._data)

    def remove(self, names, older_than=None):
        removed = 0
        for name in names:
            entry = self._data.get(name)
            if entry is None or (older_than is not None and entry[1] >= older_than):
                continue
            del self._data[name]
            removed += 1
        return removed
