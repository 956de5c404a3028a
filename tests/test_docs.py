"""
The documentation builds with Sphinx, warnings treated as errors, and its
examples run as written: every page's code blocks through
tests/docs_snippets.py, the notebook page in a fresh Jupyter kernel.
"""

import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from docs_snippets import PYTHON, code_blocks as page_blocks, pages, runnable
from pyrf_blocks import registry

ROOT = Path(__file__).resolve().parents[1]


def this_checkout_first():
    """A PYTHONPATH under which a child imports this checkout's pyrf_blocks."""
    return os.pathsep.join(
        [str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])


#: The docs build and the pages' runs share one worker of a parallel session
#: (pytest-xdist's ``--dist loadgroup``): the build starts the pages' runs
#: (``page_runs``, which runs every page once), and a second worker running
#: some of the pages' tests would run every page again.
DOCS_PAGES = pytest.mark.xdist_group("docs_pages")


@DOCS_PAGES
def test_docs_build_without_warnings(tmp_path, request):
    """sphinx-build -W succeeds on docs/."""
    # Sphinx works on one core for about 20 s: the pages' runs, when this
    # session runs them too, start first and use the other core meanwhile.
    if any(getattr(item, "originalname", None) == PAGE_TEST for item in request.session.items):
        request.getfixturevalue("page_runs")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html",
         str(ROOT / "docs"), str(tmp_path / "html")],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def code_blocks(path):
    """The Python blocks of an .rst file, as text (the runner's reading of the page)."""
    return [block.text for block in page_blocks(path) if block.language in PYTHON]


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
    """The Python examples of the chunks page (time, records, cutting and joining, synchronised pieces) run as written."""
    blocks = [b for b in code_blocks(ROOT / "docs/concepts/chunks.rst") if "import" in b]
    assert len(blocks) == 4
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
    # Peak frequencies are interpolated between bins: the tones are at 2401 and 2397.5 MHz.
    assert re.fullmatch(r"peak (2400\.99\d|2401\.00\d) MHz at -20\.0 dBm\n", printed[0]), printed
    assert re.fullmatch(r"20 chunks; peak (2397\.49\d|2397\.50\d) MHz at -35\.0 dBm\n"
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


# Every page's code runs as written (tests/docs_snippets.py says what that means).

DOCS = ROOT / "docs"
PAGES = [page.relative_to(ROOT) for page in pages(DOCS)]
#: Pages run at once: most of their time is device time the sources keep to.
PARALLEL = 4
PAGE_TIMEOUT = 240


def _run_page(page):
    """Run one page in a fresh directory and interpreter: (exit status, what it said)."""
    env = dict(os.environ, PYTHONPATH=this_checkout_first(), QT_QPA_PLATFORM="offscreen",
               MPLBACKEND="Agg")
    with tempfile.TemporaryDirectory(prefix="docs-page-") as directory:
        try:
            result = subprocess.run(
                [sys.executable, str(ROOT / "tests" / "docs_snippets.py"), str(ROOT / page)],
                cwd=directory, env=env, capture_output=True, text=True, timeout=PAGE_TIMEOUT)
        except subprocess.TimeoutExpired:
            return None, f"{page}: did not finish in {PAGE_TIMEOUT} s"
    return result.returncode, result.stderr


@pytest.fixture(scope="module")
def page_runs():
    """Every page with code to run, started at once, a few at a time."""
    runnable_pages = [page for page in PAGES
                      if any(runnable(block) for block in page_blocks(ROOT / page))]
    pool = concurrent.futures.ThreadPoolExecutor(PARALLEL)
    futures = {page: pool.submit(_run_page, page) for page in runnable_pages}
    yield futures
    pool.shutdown(wait=True, cancel_futures=True)


#: The test of each page's code (the docs build starts their runs first).
PAGE_TEST = "test_every_code_block_of_the_page_runs_as_written"


@DOCS_PAGES
@pytest.mark.parametrize("page", PAGES, ids=str)
def test_every_code_block_of_the_page_runs_as_written(page, page_runs):
    """The page's Python blocks run in order, print what its output blocks show, and its runnable commands succeed."""
    if page not in page_runs:
        return  # nothing on it to run
    status, said = page_runs[page].result()
    assert status == 0, said[-6000:]


def test_the_runner_reads_languages_outputs_and_lines(tmp_path):
    """The snippet runner tells Python from other blocks, checks outputs and names file and line."""
    from docs_snippets import PageFailure, run_page

    page = tmp_path / "page.rst"
    page.write_text("Title\n=====\n\nCode::\n\n    x = 6 * 7\n    print(x)\n\n"
                    ".. code-block:: text\n   :class: output\n\n   42\n\n"
                    ".. code-block:: yaml\n   :caption: conf.yaml\n\n   a: 1\n\n"
                    ".. toctree::\n\n   other\n\n"
                    ".. code-block:: python\n\n   print(open('conf.yaml').read().strip(), x)\n\n"
                    ".. code-block:: text\n   :class: output\n\n   a: ... 43\n")
    blocks = page_blocks(page)
    assert [(b.language, b.line) for b in blocks] == [
        ("python", 6), ("text", 12), ("yaml", 17), ("python", 25), ("text", 30)]
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        with pytest.raises(PageFailure, match=r"page\.rst:30: the block at line 25 printed"):
            run_page(page)
        page.write_text(page.read_text().replace("... 43", "... 42"))
        run_page(page)
        page.write_text(page.read_text().replace("x = 6 * 7", "x = 6 * y"))
        with pytest.raises(PageFailure, match=r"page\.rst:6: this block raised NameError"):
            run_page(page)
    finally:
        os.chdir(cwd)


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
