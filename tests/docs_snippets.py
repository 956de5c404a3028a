"""
The code blocks of a documentation page, and a runner that checks they run
as written.  ``tests/test_docs.py`` runs every page under docs/ through it;
``python3 tests/docs_snippets.py docs/PAGE.rst`` runs one by hand (in the
current directory, which the page may fill with files).

What a page may contain, and what the runner does with it:

* ``::`` literal blocks and ``.. code-block:: python``: Python, run in
  order in one namespace per page, with ``__name__ == "__main__"``.
  ``.. highlight:: LANGUAGE`` changes the language of the ``::`` blocks
  after it, as in Sphinx.
* ``.. code-block:: text`` with ``:class: output``: what the Python
  block before it prints, compared line by line (a line ``...`` stands for
  any number of lines; ``...`` inside a line for any text).
* ``.. code-block:: yaml`` (or any other language) with ``:caption: NAME``:
  written to the file NAME, for the commands after it.
* ``.. code-block:: console`` with ``:class: runs``: each ``$`` command is
  run by bash, in a shell of its own (``pyrf-blocks`` being this
  checkout's), bounded by a timeout, and the lines shown after it are
  compared with what it prints, as for output blocks; with no lines shown,
  it must exit 0.  Console blocks without the class (a real analyzer's
  address, a server that runs until stopped) are not run.
* Any other language (``console``, ``yaml``, ``text``, ``ini``...) is
  shown, not run.
"""

import contextlib
import gc
import io
import os
import re
import shlex
import subprocess
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PYTHON = ("python", "python3", "py", "default")
CODE_DIRECTIVES = ("code-block", "code", "sourcecode")
#: Seconds a console command may run.
COMMAND_TIMEOUT = 60


@dataclass
class CodeBlock:
    """One literal block of a page: its language, options, text and first line."""
    language: str
    text: str
    line: int
    options: dict = field(default_factory=dict)

    @property
    def classes(self):
        return self.options.get("class", "").split()


def _indent(line):
    return len(line) - len(line.lstrip(" "))


def _body(lines, index, parent_indent):
    """The indented block starting at or after lines[index]: (text, first line number, next index)."""
    while index < len(lines) and not lines[index].strip():
        index += 1
    if index >= len(lines) or _indent(lines[index]) <= parent_indent:
        return None, index + 1, index
    first = index
    indent = _indent(lines[index])
    body = []
    while index < len(lines):
        line = lines[index]
        if line.strip() and _indent(line) < indent:
            if _indent(line) <= parent_indent:
                break
            indent = _indent(line)  # a less indented line still inside: keep its text
        body.append(line)
        index += 1
    while body and not body[-1].strip():
        body.pop()
    width = min(_indent(line) for line in body if line.strip())
    return "\n".join(line[width:] for line in body) + "\n", first + 1, index


_DIRECTIVE = re.compile(r"^(\s*)\.\.\s+([\w-]+)::\s*(.*?)\s*$")
_OPTION = re.compile(r"^\s+:([\w-]+):\s*(.*?)\s*$")


def code_blocks(path):
    """Every literal and code block of the .rst file ``path``, in order."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    blocks, highlight, index = [], "python", 0
    while index < len(lines):
        line = lines[index]
        directive = _DIRECTIVE.match(line)
        if directive:
            indent, name, argument = directive.groups()
            if name == "highlight":
                highlight = argument or "python"
            if name in CODE_DIRECTIVES:
                options, index = {}, index + 1
                while index < len(lines) and _OPTION.match(lines[index]):
                    key, value = _OPTION.match(lines[index]).groups()
                    options[key] = value
                    index += 1
                text, first, index = _body(lines, index, len(indent))
                if text is not None:
                    blocks.append(CodeBlock((argument or highlight).lower(), text, first,
                                            options))
                continue
            index += 1
            continue
        stripped = line.strip()
        if stripped.endswith("::") and not stripped.startswith(".."):
            text, first, index = _body(lines, index + 1, _indent(line))
            if text is not None:
                blocks.append(CodeBlock(highlight.lower(), text, first))
            continue
        index += 1
    return blocks


def matches(expected, actual):
    """Whether ``actual`` text has the lines of ``expected``, ``...`` standing for any text."""
    def line_pattern(line):
        return re.compile("^" + ".*".join(re.escape(part) for part in line.split("...")) + "$")

    want = [line.rstrip() for line in expected.strip("\n").splitlines()]
    got = [line.rstrip() for line in actual.strip("\n").splitlines()]

    def match(i, j):
        if i == len(want):
            return j == len(got)
        if want[i].strip() == "...":
            return any(match(i + 1, k) for k in range(j, len(got) + 1))
        return j < len(got) and bool(line_pattern(want[i]).match(got[j])) and match(i + 1, j + 1)

    return match(0, 0)


class PageFailure(Exception):
    """A block of a page did not run as written; the message names file and line."""


def _compiled(block, page):
    # Blank lines in front make tracebacks point at the page's own lines.
    return compile("\n" * (block.line - 1) + block.text, str(ROOT / page), "exec")


def _command_and_output(block):
    """``[(command, shown output, line)]`` of the ``$`` commands of a console block."""
    commands, lines = [], block.text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("$ "):
            command, number = line[2:], block.line + index
            while command.endswith("\\"):
                index += 1
                command = command[:-1] + " " + lines[index].strip()
            shown = []
            while index + 1 < len(lines) and not lines[index + 1].startswith("$ "):
                index += 1
                shown.append(lines[index])
            commands.append((command, "\n".join(shown), number))
        index += 1
    return commands


def run_console(block, page, environment=None):
    """Run the ``$`` commands of a console block; raise PageFailure if one fails."""
    for command, shown, line in _command_and_output(block):
        where = f"{page}:{line}"
        # Each command in a shell of its own, pyrf-blocks being this checkout's.
        script = (f'pyrf-blocks() {{ {shlex.quote(sys.executable)} -m pyrf_blocks.cli "$@"; }}\n'
                  + command)
        try:
            result = subprocess.run(["bash", "-c", script], capture_output=True, text=True,
                                    env=environment, timeout=COMMAND_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise PageFailure(f"{where}: '{command}' did not finish in "
                              f"{COMMAND_TIMEOUT} s") from None
        printed = result.stdout + result.stderr
        if "Traceback (most recent call last)" in printed:
            raise PageFailure(f"{where}: '{command}' crashed:\n{printed[-3000:]}")
        if shown.strip():
            # What the page shows is standard output, or both streams (a
            # progress bar, problems reported on standard error).
            if not (matches(shown, result.stdout) or matches(shown, printed)):
                raise PageFailure(f"{where}: '{command}' printed\n{printed}\n"
                                  f"but the page shows\n{shown}")
        elif result.returncode != 0:
            raise PageFailure(f"{where}: '{command}' exited {result.returncode}:\n"
                              f"{printed[-3000:]}")


class _Tee(io.TextIOBase):
    """Standard output that is also kept, for comparing with output blocks."""

    def __init__(self, stream):
        self.stream, self.kept = stream, io.StringIO()

    def write(self, text):
        self.kept.write(text)
        return self.stream.write(text)

    def flush(self):
        self.stream.flush()


def run_page(page, environment=None):
    """
    Run the blocks of ``page`` in the current directory as the module
    docstring says; raise :class:`PageFailure` naming the file and line of
    the first block that fails.
    """
    page = Path(page).resolve()
    try:
        shown = page.relative_to(ROOT)
    except ValueError:
        shown = page
    namespace = {"__name__": "__main__"}
    printed, last_python = "", None
    for block in code_blocks(page):
        where = f"{shown}:{block.line}"
        if "caption" in block.options and block.language not in PYTHON:
            Path(block.options["caption"]).write_text(block.text, encoding="utf-8")
        if block.language in PYTHON:
            tee = _Tee(sys.stdout)
            try:
                with contextlib.redirect_stdout(tee):
                    exec(_compiled(block, shown), namespace)
            except BaseException as error:  # noqa: B036 - SystemExit of a snippet too
                raise PageFailure(f"{where}: this block raised {type(error).__name__}: "
                                  f"{error}\n{traceback.format_exc()}") from None
            printed, last_python = tee.kept.getvalue(), block
        elif "output" in block.classes:
            if last_python is None:
                raise PageFailure(f"{where}: an output block with no Python block before it")
            if not matches(block.text, printed):
                raise PageFailure(f"{where}: the block at line {last_python.line} printed\n"
                                  f"{printed}\nbut the page shows\n{block.text}")
        elif block.language == "console" and "runs" in block.classes:
            run_console(block, shown, environment)


def runnable(block):
    """Whether the runner runs or checks ``block`` (rather than only showing it)."""
    return (block.language in PYTHON or "output" in block.classes
            or (block.language == "console" and "runs" in block.classes))


def pages(root):
    """The .rst pages under ``root`` (not its build output)."""
    return sorted(p for p in Path(root).rglob("*.rst") if "_build" not in p.parts)


if __name__ == "__main__":
    try:
        run_page(Path(sys.argv[1]).resolve(), dict(os.environ))
    except PageFailure as failure:
        print(failure, file=sys.stderr)
        sys.exit(1)
    finally:
        # The page is done (its files written, its outputs compared): the
        # interpreter's exit need not collect over all it loaded (0.3-0.5 s
        # a page, as pyrf_blocks.cli.main explains).
        gc.freeze()
