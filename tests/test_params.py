"""
Block parameters (pyrf_blocks.params): one rule per parameter, used by
Python constructors, pipeline checks and workers alike.
"""

import math

import pytest

from pyrf_blocks import Graph, fft_block, simulated_instrument
from pyrf_blocks.block import Block
from pyrf_blocks.errors import ParameterError
from pyrf_blocks.interfaces import IIQProducer
from pyrf_blocks.params import Param, check_params, param_specs


def test_python_arguments_take_unit_strings(graph):
    """Unit strings work in Python arguments as they do in YAML ("2.4GHz", "1Ki", "-20dBm")."""
    wsa = simulated_instrument(center_frequency="2.4GHz", sample_rate="7.8125MHz",
                               tones=[("1MHz", "-20dBm")], noise_floor="-150dBm/Hz",
                               graph=graph)
    assert wsa.settings["center_frequency"] == 2.4e9
    assert wsa.settings["sample_rate"] == 7.8125e6
    assert wsa.settings["tones"] == ((1e6, -20.0),)
    fft = fft_block(wsa, "1Ki")  # positional too
    assert fft.size == 1024 and isinstance(fft.size, int)


@pytest.mark.parametrize("params, parameter", [
    ({"sample_rate": math.inf}, "sample_rate"),
    ({"sample_rate": math.nan}, "sample_rate"),
    ({"sample_rate": -1.0}, "sample_rate"),
    ({"samples_per_packet": 10 ** 13}, "samples_per_packet"),
    ({"count": "abc"}, "count"),
    ({"noise_floor": "x"}, "noise_floor"),
])
def test_python_constructors_refuse_values_out_of_range(graph, params, parameter):
    """A bad value raises ParameterError naming the parameter, and no block is made."""
    with pytest.raises(ParameterError) as caught:
        simulated_instrument(graph=graph, **params)
    assert caught.value.parameters == [parameter]
    assert f"simulated_instrument: {parameter}: " in str(caught.value)
    assert graph.blocks == {}


def test_every_refusal_is_listed_and_bounds_may_name_other_parameters(graph):
    """All refused parameters are reported together; overlap is checked against size."""
    wsa = simulated_instrument(graph=graph)
    with pytest.raises(ParameterError) as caught:
        fft_block(wsa, size=-5, window="nope", name="fft")
    assert caught.value.parameters == ["size", "window"]
    assert str(caught.value).startswith("fft_block 'fft': size: must be at least 8, got -5; "
                                        "window: unknown window 'nope'")
    with pytest.raises(ParameterError, match=r"overlap: must be less than size \(256\), got 300"):
        fft_block(wsa, size=256, overlap=300)
    fft = fft_block(wsa, size=256, overlap=128)
    with pytest.raises(ParameterError, match="overlap: must be less than size"):
        fft.configure(overlap=256)
    assert fft.overlap == 128


def test_a_huge_fft_is_refused_before_allocating(graph):
    """fft_block(size=2**40) is refused by its bound: no window or frame is computed (RSS does not grow)."""
    wsa = simulated_instrument(graph=graph)
    before = _rss_kib()
    with pytest.raises(ParameterError, match="size: must be at most 16777216"):
        fft_block(wsa, size=2 ** 40)
    assert _rss_kib() - before < 5 << 10


def _rss_kib():
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))


def test_a_rule_is_declared_once_and_read_everywhere():
    """One param_rules entry drives Python calls, strict (file/request) checks and the docs' words."""

    class gain_block(Block):
        type_name = "gain_block"
        kind = "iq"
        requires = (IIQProducer,)
        param_rules = {"gain": Param("dB", minimum=-40, maximum=40),
                       "mode": Param(choices=("fast", "exact"))}

        def __init__(self, producer, gain=0.0, mode="fast", **kwargs):
            self.gain, self.mode = gain, mode
            super().__init__(producer, **kwargs)

    specs = param_specs(gain_block)
    assert specs["gain"].type_text == "quantity in dB"
    assert specs["gain"].range_text == "at least -40 and at most 40"
    assert check_params(gain_block, {"gain": "3dB"}) == {"gain": 3.0}
    with pytest.raises(ParameterError, match="gain: must be at most 40, got 50.0"):
        check_params(gain_block, {"gain": 50})
    with pytest.raises(ParameterError, match="mode: 'slow' is not one of 'fast', 'exact'"):
        check_params(gain_block, {"mode": "slow"})
    graph = Graph()
    wsa = simulated_instrument(graph=graph)
    assert gain_block(wsa, gain="-3dB").gain == -3.0
    with pytest.raises(ParameterError, match="gain_block: gain: must be at least -40"):
        gain_block(wsa, gain=-41)
