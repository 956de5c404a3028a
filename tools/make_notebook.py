"""
Write docs/howto/notebook.ipynb from the code blocks of docs/howto/notebook.rst,
one cell each, so that the page and the notebook cannot drift apart
(tests/test_docs.py checks it, and runs the notebook in a fresh kernel).

    python3 tools/make_notebook.py
"""

import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "docs" / "howto" / "notebook.rst"
NOTEBOOK = PAGE.with_suffix(".ipynb")
sys.path.insert(0, str(ROOT / "tests"))
from test_docs import code_blocks  # noqa: E402  the suite's own reading of the page


def notebook():
    """The notebook of the page: a title cell, then one code cell per block."""
    title = PAGE.read_text(encoding="utf-8").splitlines()[0]
    cells = [nbformat.v4.new_markdown_cell(
        f"# {title}\n\nThe code of `docs/howto/notebook.rst`, one cell per block.")]
    cells += [nbformat.v4.new_code_cell(block.rstrip("\n")) for block in code_blocks(PAGE)]
    for number, cell in enumerate(cells):
        cell.id = f"cell-{number}"  # stable, so that the file changes only with the page
    book = nbformat.v4.new_notebook(cells=cells)
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                   "language": "python"}
    return book


if __name__ == "__main__":
    nbformat.write(notebook(), str(NOTEBOOK))
    print(f"wrote {NOTEBOOK.relative_to(ROOT)}")
