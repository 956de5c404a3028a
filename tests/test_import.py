"""
`import pyrf_blocks` stays light: the network, TLS and the GUI load when used.
"""

from pyrf_blocks.testing import modules_loaded

#: Modules that only placing blocks, reading streams or serving needs.
HEAVY = ("twisted.web", "treq", "OpenSSL", "cryptography", "service_identity",
         "twisted.internet.reactor", "twisted.application", "scipy", "pyqtgraph")


def loaded_after(code):
    """The HEAVY modules in sys.modules after running ``code`` in a fresh interpreter."""
    return modules_loaded(code, HEAVY)


def test_import_pyrf_blocks_loads_no_http_tls_scipy_or_reactor():
    """A fresh `import pyrf_blocks` leaves twisted.web, treq, OpenSSL, cryptography, scipy out."""
    assert loaded_after("import pyrf_blocks") == []


def test_the_names_of_the_net_package_import_light_too():
    """process, Place, remote_block, serve and the errors import without the HTTP code."""
    assert loaded_after("from pyrf_blocks.net import (Place, RemoteError, Served, TLSError,\n"
                        "    WorkerUnreachable, placed_block, placed_sink, process,\n"
                        "    remote_block, serve)\n"
                        "from pyrf_blocks import errors") == []


def test_reading_a_stream_loads_the_http_client():
    """The HTTP parts load when they are used: a remote block's client."""
    loaded = loaded_after("import pyrf_blocks as p\n"
                          "from twisted.internet.task import Clock\n"
                          "from pyrf_blocks.net import remote_block\n"
                          "from pyrf_blocks.net.client import http_client\n"
                          "g = p.Graph(Clock())\n"
                          "http_client(g)\n")
    assert {"twisted.web", "treq", "OpenSSL"} <= set(loaded)


def test_import_pyrf_blocks_does_not_load_the_pipeline_parser():
    """The window blocks parse '1h' with the pipeline's units only when given text."""
    assert modules_loaded("import pyrf_blocks", ("pydantic", "ruamel.yaml")) == []


def test_making_blocks_with_units_does_not_load_the_pipeline_parser():
    """Blocks given "2.4GHz" or "200ms" convert them without importing pyrf_blocks.pipeline."""
    code = ("import pyrf_blocks as p\n"
            "p.fft_block(p.simulated_instrument(center_frequency='2.4GHz'))\n"
            "power = p.power_block(p.waveform_source(), p.waveform_source())\n"
            "assert p.window_block(power, every='200ms').every_ns == 200_000_000\n")
    assert modules_loaded(code, ("pyrf_blocks.pipeline", "pydantic", "ruamel.yaml")) == []


def test_the_default_window_option_is_not_computed_when_parsing():
    """--window's default is not checked by computing it: parsing a command line loads no scipy."""
    assert loaded_after("import argparse\n"
                        "from pyrf_blocks import defaults\n"
                        "from pyrf_blocks.commands.options import add_window_argument\n"
                        "parser = argparse.ArgumentParser()\n"
                        "add_window_argument(parser)\n"
                        "assert parser.parse_args([]).window == defaults.WINDOW\n") == []
