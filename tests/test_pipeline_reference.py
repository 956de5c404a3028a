"""
The YAML reference generated from the block registry, and the parameter
declarations it is generated from.
"""

import os
import subprocess
import sys

import pytest

from pyrf_blocks import max_hold, simulated_instrument
from pyrf_blocks.block import Block, Sink
from pyrf_blocks.interfaces import ISpectrumProducer
from pyrf_blocks.pipeline.reference import block_reference, reference_rst
from pyrf_blocks.pipeline.schema import constructor_parameters, param_specs
from pyrf_blocks.pipeline.units import UNITS
from pyrf_blocks.registry import block_types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_every_block_type_and_parameter_is_documented():
    """Each registered type has a section listing each of its parameters."""
    text = reference_rst()
    types = block_types()
    starts = {name: text.index(f"\n{name}\n{'-' * len(name)}\n") for name in types}
    ends = sorted(starts.values())[1:] + [len(text)]
    for name, factory in types.items():
        section = text[starts[name]:ends[sorted(starts.values()).index(starts[name])]]
        for param in param_specs(factory):
            assert f"   * - ``{param}``" in section, (name, param)


def test_reference_states_units_defaults_and_interfaces():
    """Units, defaults and interfaces appear as the block classes declare them."""
    text = reference_rst()
    fft = text[text.index("\nfft_block\n"):text.index("\nmax_hold\n")]
    assert "* **inputs:** ``ISampleProducer``" in fft
    assert "* **output:** ``spectrum`` (``ISpectrumProducer``)" in fft
    assert "   * - ``size``\n     - count\n     - ``1024``\n     - FFT length, samples." in fft
    wsa = text[text.index("\nsimulated_instrument\n"):]
    assert "   * - ``center_frequency``\n     - quantity in Hz\n     - ``2400000000.0``" in wsa
    assert "   * - ``tones``\n     - list of [Hz, dBm]\n     - ``[[1000000.0, -20.0]]``" in wsa
    printer = text[text.index("\nprinter\n"):]
    assert "   * - ``stream``\n     - Python only" in printer
    for unit in UNITS:
        assert f"   * - ``{unit}``" in text


def test_sphinx_directive_builds_the_reference(tmp_path):
    """The docs' pipeline-reference directive renders the registry with no Sphinx warning."""
    source = tmp_path / "src"
    source.mkdir()
    (source / "conf.py").write_text('extensions = ["pipeline_reference"]\n')
    (source / "index.rst").write_text("Reference\n=========\n\n.. pipeline-reference::\n")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([ROOT, os.path.join(ROOT, "docs", "_ext")]))
    result = subprocess.run([sys.executable, "-m", "sphinx", "-W", "-q", "-b", "html",
                             str(source), str(tmp_path / "html")], env=env, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-3000:]
    html = (tmp_path / "html" / "index.html").read_text(encoding="utf-8")
    for name in block_types():
        assert f'id="{name.replace("_", "-")}"' in html, name


def test_param_units_must_name_parameters_and_units():
    """A typo in a block's param_units is caught when its specs are read."""

    class typo_block(Block):
        type_name = "typo_block"
        param_units = {"sise": "count"}

        def __init__(self, producer, size=4, **kwargs):
            super().__init__(producer, **kwargs)

    with pytest.raises(TypeError, match="typo_block.param_units names 'sise'"):
        param_specs(typo_block)
    typo_block.param_units = {"size": "samples"}
    with pytest.raises(TypeError, match="unknown unit 'samples' for size"):
        param_specs(typo_block)


def test_parameters_passed_on_through_kwargs_are_found():
    """A block whose __init__ hands **kwargs to its base has the base's parameters too."""

    class base_display(Sink):
        """
        Shows spectra (test only).

        :param headless: keep the traces without opening a window.
        """
        requires = (ISpectrumProducer,)

        def __init__(self, producer, headless=False, max_fps=30.0, **kwargs):
            super().__init__(producer, **kwargs)

    class one_display(base_display):
        type_name = "one_display"

        def __init__(self, producer, title="spectrum ", on_click=print, colours={}, **kwargs):
            super().__init__(producer, **kwargs)

    assert "   * - ``title``\n     - a string\n     - ``'spectrum '``" in "\n".join(
        block_reference("one_display", one_display))
    assert ("   * - ``headless``\n     - true or false\n     - ``false``\n     - keep the "
            "traces without opening a window.") in "\n".join(
        block_reference("one_display", one_display))
    assert constructor_parameters(one_display) == {
        "title": "spectrum ", "on_click": print, "colours": {}, "headless": False,
        "max_fps": 30.0}
    specs = param_specs(one_display)
    assert specs["on_click"].python_only  # a function: only Python can give it
    assert specs["colours"].check({"live": "red"}) == {"live": "red"}
    with pytest.raises(ValueError, match="colours: expected a mapping, got 'red'"):
        specs["colours"].check("red")
    assert list(constructor_parameters(max_hold)) == []
    assert "paced" in constructor_parameters(simulated_instrument)
