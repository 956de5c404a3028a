"""
The documentation builds with Sphinx, warnings treated as errors, and its
examples run as written (the notebook page in a fresh Jupyter kernel).
"""

import os
import re
import subprocess
import sys
from pathlib import Path

from pyrf_blocks import registry

ROOT = Path(__file__).resolve().parents[1]


def this_checkout_first():
    """A PYTHONPATH under which a child imports this checkout's pyrf_blocks."""
    return os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])


def test_docs_build_without_warnings(tmp_path):
    """sphinx-build -W succeeds on docs/."""
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(ROOT / "docs"), str(tmp_path / "html")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def code_blocks(path):
    """The indented literal blocks that follow a '::' paragraph in an .rst file."""
    blocks, current, inside = [], [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if inside:
            if line.startswith("    ") or not line.strip():
                current.append(line[4:])
                continue
            blocks.append("\n".join(current).strip() + "\n")
            current, inside = [], False
        if line.rstrip().endswith("::"):
            inside = True
    if current:
        blocks.append("\n".join(current).strip() + "\n")
    return blocks


def test_block_and_test_examples_in_the_docs_run():
    """The custom block of the concepts page passes the tests of the how-to page."""
    block = next(b for b in code_blocks(ROOT / "docs/concepts/blocks.rst")
                 if "class channel_power" in b)
    tests = next(b for b in code_blocks(ROOT / "docs/howto/test_a_block.rst")
                 if "def test_chunking" in b)
    namespace = {"__name__": "docs_example"}
    try:
        exec(compile(block + tests, "docs-example", "exec"), namespace)
        namespace["test_interface"]()
        namespace["test_chunking"]()
    finally:
        registry._TYPES.pop("channel_power", None)  # leave the registry as it was


def test_named_outputs_page_runs_as_written(capsys):
    """Every code block of the named-outputs concept page runs, and prints what the page says."""
    for block in code_blocks(ROOT / "docs/concepts/outputs.rst"):
        namespace = {"__name__": "docs_outputs"}
        exec(compile(block, "outputs.rst", "exec"), namespace)
    assert capsys.readouterr().out.strip().endswith("[2.0, 2.0, 2.0]")


def test_the_other_examples_of_the_testing_how_to_pass_as_written():
    """The backpressure and worker tests of the how-to page run and pass as written."""
    blocks = [b for b in code_blocks(ROOT / "docs/howto/test_a_block.rst")
              if "def test_" in b and "def test_chunking" not in b]
    assert len(blocks) == 2
    for block in blocks:
        namespace = {"__name__": "docs_example"}
        exec(compile(block, "docs-example", "exec"), namespace)
        tests = [value for name, value in namespace.items() if name.startswith("test_")]
        assert len(tests) == 1
        tests[0]()


def test_chunk_page_examples_run():
    """The Python examples of the chunks page (time, records, cutting and joining) run as written."""
    blocks = [b for b in code_blocks(ROOT / "docs/concepts/chunks.rst") if "import" in b]
    assert len(blocks) == 3
    exec(compile("\n".join(blocks), "docs/concepts/chunks.rst", "exec"),
         {"__name__": "docs_example"})


NOTEBOOK_PAGE = ROOT / "docs" / "howto" / "notebook.rst"


def test_the_notebook_holds_the_code_of_its_page():
    """docs/howto/notebook.ipynb has one code cell per code block of its page, in order."""
    import nbformat

    book = nbformat.read(str(NOTEBOOK_PAGE.with_suffix(".ipynb")), as_version=4)
    cells = [cell.source for cell in book.cells if cell.cell_type == "code"]
    blocks = [block.rstrip("\n") for block in code_blocks(NOTEBOOK_PAGE)]
    assert cells == blocks, "regenerate it: python3 tools/make_notebook.py"


def test_the_notebook_runs_graphs_again_and_again_in_a_fresh_kernel(tmp_path, monkeypatch):
    """In a new Jupyter kernel the notebook runs a live graph, another, then records, replays."""
    import nbclient
    import nbformat

    monkeypatch.setenv("PYTHONPATH", this_checkout_first())
    book = nbformat.read(str(NOTEBOOK_PAGE.with_suffix(".ipynb")), as_version=4)
    nbclient.NotebookClient(book, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    printed = ["".join(output.get("text", "") for output in cell.outputs)
               for cell in book.cells if cell.cell_type == "code"]
    assert re.fullmatch(r"peak 2400\.99\d MHz at -20\.0 dBm\n", printed[0]), printed
    assert re.fullmatch(r"20 chunks; peak 2397\.49\d MHz at -35\.0 dBm\n"
                        r"the first run's collector still holds \d+ chunks\n",
                        printed[1]), printed
    assert re.fullmatch(r"recorded \d+ samples; replayed the same: True\n",
                        printed[2]), printed


def test_the_sigmf_recipe_records_then_replays_in_one_script(tmp_path):
    """The SigMF page's recipe runs as written: record, run, replay, run again."""
    block = next(b for b in code_blocks(ROOT / "docs/howto/sigmf_recordings.rst")
                 if "record_block" in b)
    env = dict(os.environ, PYTHONPATH=this_checkout_first())
    result = subprocess.run([sys.executable, "-c", block], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == "976 spectra of 1024 bins\n"
    assert (tmp_path / "capture.sigmf-meta").exists()


def test_processors_and_aggregators_page_runs_as_written(capsys):
    """Every code block of the processors-and-aggregators page runs and prints what it says."""
    blocks = code_blocks(ROOT / "docs/concepts/processors_and_aggregators.rst")
    assert len(blocks) == 4
    for block in blocks:
        exec(compile(block, "processors_and_aggregators.rst", "exec"),
             {"__name__": "docs_kpi"})
    printed = capsys.readouterr().out
    assert "1552.4 W\n2000\n" in printed
    assert "column 9: unknown name 'p_inn'" in printed
    assert "THD 3.08 %, 128 cycles at 229.9 V rms" in printed
    assert "CEC efficiency 93.01 %, 0 points missing" in printed
