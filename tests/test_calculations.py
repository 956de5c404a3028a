"""
Seed 001's calculations on our workers: the registered calculations are
pure and rebuildable, and the worker's /calculations routes answer them
with the same rules as the rest of its API (token, size and depth limits,
clear 4xx).
"""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from pyrf_blocks.calculations import CALCULATIONS, CalculationService
from pyrf_blocks.errors import NoCalculationState
from pyrf_blocks.testing import WorkerPair

values_lists = st.lists(st.floats(-1e6, 1e6), min_size=1, max_size=60)


def requests_of(values, cuts):
    """``args`` of consecutive requests, ``values`` cut at ``cuts`` (times 1 ms apart)."""
    times = [int(t) for t in np.arange(len(values)) * 1_000_000 + 10**18]
    bounds = [0] + sorted(set(c % len(values) for c in cuts) - {0}) + [len(values)]
    return [{"times": times[a:b], "values": values[a:b]} for a, b in zip(bounds, bounds[1:])]


@pytest.mark.parametrize("name", sorted(CALCULATIONS))
@given(values=values_lists, cuts=st.lists(st.integers(0, 100), max_size=8),
       snapshot=st.integers(0, 100))
@settings(max_examples=40, deadline=None)
def test_a_rebuild_from_any_snapshot_gives_the_same_results(name, values, cuts, snapshot):
    """PROCESS_STATE from the state fetched at any request, over the requests since, gives exactly PROCESS's results."""
    requests = requests_of(values, cuts)
    kept = CalculationService()
    kept.process_state(name, "v", 0, None, requests[0])
    results = [kept.process(name, "v", 0, args) for args in requests[1:]]
    at = snapshot % len(requests)
    state = None
    if at:
        replay = CalculationService()
        replay.process_state(name, "v", 0, None, requests[0])
        for args in requests[1:at]:
            replay.process(name, "v", 0, args)
        state = replay.get_state(name, "v", 0)
    rebuilt = CalculationService()
    for args in requests[at:]:
        state, result = rebuilt.process_state(name, "v", 0, state, args)
        if args is not requests[0]:
            assert result == results[requests.index(args) - 1]
    assert json.loads(json.dumps(state)) == state and state["version"] == 1


@given(values=values_lists, cuts=st.lists(st.integers(0, 100), max_size=8))
@settings(max_examples=40, deadline=None)
def test_the_calculations_compute_what_they_say(values, cuts):
    """mean, integral (trapezoid over seconds) and max over any cutting equal numpy's over the whole."""
    requests = requests_of(values, cuts)
    results = {}
    for name in ("mean", "integral", "max"):
        state = None
        for args in requests:
            state, results[name] = CALCULATIONS[name].run(state, args["times"], args["values"])
    times = np.concatenate([r["times"] for r in requests])
    seconds = (times - times[0]) / 1e9  # (differences first: 1e18 ns as a float is ±128 ns)
    assert_allclose(results["mean"], np.mean(values), rtol=1e-9, atol=1e-6)
    assert_allclose(results["integral"], np.trapezoid(values, seconds), rtol=1e-9, atol=1e-6)
    assert results["max"] == max(values)


def test_a_forgotten_variable_asks_for_a_rebuild():
    """Past max_variables the least recently used state is forgotten: PROCESS on it is NoCalculationState."""
    service = CalculationService(max_variables=2)
    one = {"times": [1], "values": [1.0]}
    for var in ("a", "b", "c"):
        service.process_state("max", var, 1, None, one)
    assert service.variables == 2
    with pytest.raises(NoCalculationState):
        service.process("max", "a", 2, {"times": [2], "values": [2.0]})
    assert service.process("max", "c", 2, {"times": [2], "values": [2.0]}) == 2.0


ARGS = {"times": [1, 2], "values": [1.0, 2.0]}


@pytest.mark.parametrize("path, body, code, message", [
    ("/calculations/median/process", {"var": "v", "time": 1, "args": ARGS}, 404,
     "no calculation 'median' on this worker (it has integral, max, mean)"),
    ("/calculations/mean/process", {"var": "v", "time": 1, "args": ARGS}, 409,
     "no mean state for 'v' here"),
    ("/calculations/mean/get_state", {"var": "v", "time": 1}, 409, "no mean state"),
    ("/calculations/mean/process", {"var": "", "time": 1, "args": ARGS}, 400,
     "var is a name of 1 to 200 printable characters"),
    ("/calculations/mean/process", {"var": 7, "time": 1, "args": ARGS}, 400, "var is a name"),
    ("/calculations/mean/process", {"var": "a\nb", "time": 1, "args": ARGS}, 400,
     "var is a name"),
    ("/calculations/mean/process", {"var": "v", "time": "now", "args": ARGS}, 400,
     "time is an integer (ns)"),
    ("/calculations/mean/process", {"var": "v", "args": ARGS}, 400,
     "mean/process takes a JSON object of args, time, var"),
    ("/calculations/mean/process_state",
     {"var": "v", "time": 1, "state": {"version": 2, "count": 1, "sum": 1.0}, "args": ARGS},
     400, "a mean state of version 2; this worker's mean is version 1"),
    ("/calculations/mean/process_state",
     {"var": "v", "time": 1, "state": {"version": 1, "count": 1}, "args": ARGS},
     400, "a mean state has count, sum, not count"),
    ("/calculations/mean/process_state",
     {"var": "v", "time": 1, "state": {"version": 1, "count": "1", "sum": 1.0}, "args": ARGS},
     400, "mean state count is a number or null"),
    ("/calculations/mean/process_state", {"var": "v", "time": 1, "state": [], "args": ARGS},
     400, "a mean state is an object"),
    ("/calculations/mean/process_state",
     {"var": "v", "time": 1, "state": None, "args": {"times": [2, 1], "values": [1, 2]}},
     400, "args' times must increase"),
    ("/calculations/mean/process_state",
     {"var": "v", "time": 1, "state": None, "args": {"times": [1], "values": ["x"]}},
     400, "args' values are numbers"),
    ("/calculations/mean/process_state",
     {"var": "v", "time": 1, "state": None, "args": [1]}, 400, "args is"),
])
def test_bad_requests_get_a_clear_4xx(path, body, code, message):
    """An unknown calculation is 404, a variable without state 409, a bad var, time, state or args 400, each saying what."""
    status, _, answer = WorkerPair().call("POST", path, json=body)
    assert status == code and message in json.loads(answer)["error"]


def test_the_worker_answers_the_three_requests_and_counts_them():
    """process_state, process and get_state answer as seed 001 says; /calculations lists them; /metrics counts them."""
    pair = WorkerPair()
    status, _, body = pair.call("POST", "/calculations/max/process_state",
                                json={"var": "v", "time": 2, "state": None, "args": ARGS})
    assert status == 200 and json.loads(body) == {"state": {"version": 1, "max": 2.0},
                                                  "result": 2.0}
    status, _, body = pair.call("POST", "/calculations/max/process", json={
        "var": "v", "time": 3, "args": {"times": [3], "values": [5.0]}})
    assert status == 200 and json.loads(body) == {"result": 5.0}
    status, _, body = pair.call("POST", "/calculations/max/get_state",
                                json={"var": "v", "time": 3})
    assert json.loads(body) == {"state": {"version": 1, "max": 5.0}}
    listed = json.loads(pair.call("GET", "/calculations")[2])["calculations"]
    assert {c["name"] for c in listed} >= {"mean", "integral", "max"}
    metrics = pair.call("GET", "/metrics")[2].decode()
    assert 'pyrf_calculation_requests_total{calculation="max",request="process"} 1.0' in metrics
    assert "pyrf_calculation_variables 1.0" in metrics
    assert pair.call("GET", "/calculations/max/process")[0] == 405


def test_the_worker_rules_hold_for_calculations():
    """Without the token 401; a body over the limit 413; JSON nested too deep 400."""
    pair = WorkerPair(token="s3cret", max_body=300)
    body = {"var": "v", "time": 1, "state": None, "args": ARGS}
    assert pair.call("POST", "/calculations/mean/process_state", json=body)[0] == 401
    auth = {"Authorization": "Bearer s3cret"}
    assert pair.call("POST", "/calculations/mean/process_state", json=body,
                     headers=auth)[0] == 200
    big = dict(body, args={"times": list(range(100)), "values": [1.0] * 100})
    assert pair.call("POST", "/calculations/mean/process_state", json=big,
                     headers=auth)[0] == 413
    deep = b'{"var": "v", "time": 1, "state": null, "args": ' + b"[" * 40 + b"]" * 40 + b"}"
    status, _, answer = pair.call("POST", "/calculations/mean/process_state", data=deep,
                                  headers=auth)
    assert status == 400 and "nested deeper" in json.loads(answer)["error"]
