"""
Every public exception of the package is defined once, in pyrf_blocks.errors.
"""

import ast
import importlib
from pathlib import Path

import pytest

import pyrf_blocks
from pyrf_blocks import errors

PACKAGE = Path(pyrf_blocks.__file__).parent


def package_sources():
    return sorted(PACKAGE.rglob("*.py"))


def test_no_module_but_errors_defines_a_public_exception_class():
    """A class deriving from an exception, outside errors.py, is private (_Name)."""
    names = set(errors.__all__) | {"Exception", "BaseException", "ValueError",
                                   "RuntimeError", "LookupError", "ConnectionError"}
    strays = []
    for path in package_sources():
        if path.name == "errors.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ClassDef) or node.name.startswith("_"):
                continue
            bases = {getattr(base, "id", getattr(base, "attr", None)) for base in node.bases}
            if bases & names or node.name.endswith(("Error", "Exception", "Mismatch")):
                strays.append(f"{path.relative_to(PACKAGE)}:{node.lineno} {node.name}")
    assert strays == []


def test_every_error_is_an_exception_with_a_docstring():
    """Each name of errors.__all__ is an Exception subclass documented where it is defined."""
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, Exception) and cls.__module__ == "pyrf_blocks.errors"
        assert cls.__doc__ and cls.__doc__.strip(), name


@pytest.mark.parametrize("module, name", [
    ("pyrf_blocks.chunk", "ChunkDecodeError"),
    ("pyrf_blocks.registry", "UnknownBlockType"),
    ("pyrf_blocks.instruments.vrt", "VRTError"),
    ("pyrf_blocks.instruments.scpi", "SCPIError"),
    ("pyrf_blocks.instruments.scpi", "SCPITimeout"),
    ("pyrf_blocks.instruments.scpi", "SCPIConnectionLost"),
    ("pyrf_blocks.instruments.wsa", "InstrumentError"),
    ("pyrf_blocks.instruments.wsa", "InstrumentConnectionError"),
    ("pyrf_blocks.net", "RemoteError"),
    ("pyrf_blocks.net", "WorkerUnreachable"),
    ("pyrf_blocks.net", "TLSError"),
    ("pyrf_blocks.net.client", "RemoteError"),
    ("pyrf_blocks.net.tls", "TLSError"),
    ("pyrf_blocks.net.replies", "HTTPError"),
    ("pyrf_blocks.pipeline", "PipelineError"),
    ("pyrf_blocks.pipeline", "UnitError"),
    ("pyrf_blocks.pipeline.export", "ExportError"),
    ("pyrf_blocks.pipeline.schema", "FieldError"),
    ("pyrf_blocks.commands.view", "SourceError"),
    ("pyrf_blocks.gui.loop", "ReactorMismatch"),
])
def test_the_old_import_paths_give_the_same_class(module, name):
    """Code that imported an error from where it used to live gets the one class."""
    assert getattr(importlib.import_module(module), name) is getattr(errors, name)


def test_errors_imports_nothing_of_the_package():
    """errors.py stands alone, so any module (client.py, tls.py...) may import it."""
    tree = ast.parse((PACKAGE / "errors.py").read_text(encoding="utf-8"))
    imported = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert all(getattr(node, "level", 0) == 0 for node in imported)
    assert all(alias.name.split(".")[0] in ("difflib",)
               for node in imported for alias in node.names)


def test_the_tls_module_does_not_import_the_client_module():
    """net/tls.py no longer imports net/client.py (which imports tls.py when it connects)."""
    tree = ast.parse((PACKAGE / "net" / "tls.py").read_text(encoding="utf-8"))
    sources = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert "client" not in sources and "pyrf_blocks.net.client" not in sources


def test_unknown_block_type_suggests_the_closest_registered_name():
    """The message names the type asked for and the nearest known one."""
    error = errors.UnknownBlockType("fft_blok", ["fft_block", "printer"])
    assert str(error) == "unknown block type 'fft_blok'; did you mean 'fft_block'?"
    assert isinstance(error, LookupError) and error.name == "fft_blok"
    assert str(errors.UnknownBlockType("zzz")) == "unknown block type 'zzz'"

