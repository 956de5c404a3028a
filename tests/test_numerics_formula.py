"""
Tests for the safe formula evaluator: what it computes, what it refuses at
construction (with the column), and the limits that keep it from hanging.
"""

import builtins
import time

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

from pyrf_blocks.errors import FormulaError, FormulaTimeout
from pyrf_blocks.numerics.formula import MAX_LENGTH, Formula


def test_formula_computes_element_by_element_like_numpy():
    """Operators, functions and constants give numpy's results over whole arrays."""
    v = np.linspace(-3, 3, 101)
    i = np.cos(v)
    f = Formula("sqrt(abs(v)) * i ** 2 - log10(1 + v*v) / 2 + max(v, i, 0) + pi % 1",
                names=["v", "i"])
    expected = (np.sqrt(np.abs(v)) * i ** 2 - np.log10(1 + v * v) / 2
                + np.maximum(np.maximum(v, i), 0) + np.pi % 1)
    assert_allclose(f(v=v, i=i), expected)
    assert f.names == ("v", "i")


def test_conditions_comparisons_and_boolean_operators_are_elementwise():
    """Chained comparisons, and/or/not, where() and a if c else b work on arrays."""
    x = np.arange(-3.0, 4.0)
    assert_array_equal(Formula("0 < x <= 2", ["x"])(x=x), (0 < x) & (x <= 2))
    assert_array_equal(Formula("x < -1 or x > 1 and not x == 3", ["x"])(x=x),
                       (x < -1) | ((x > 1) & ~(x == 3)))
    assert_array_equal(Formula("where(x > 0, x, 0)", ["x"])(x=x), np.maximum(x, 0))
    assert_array_equal(Formula("x if x > 0 else -x", ["x"])(x=x), np.abs(x))
    assert_array_equal(Formula("clip(x, -1, 1)", ["x"])(x=x), np.clip(x, -1, 1))


def test_integer_inputs_compute_as_floats_and_division_by_zero_gives_inf():
    """Integer arrays are taken as float64; 1/0 is inf and 0/0 nan, without warnings."""
    f = Formula("1 / n + n ** -1", ["n"])
    with np.errstate(all="raise"):
        result = f(n=np.array([0, 1, 2]))
    assert result.dtype == np.float64
    assert result[0] == np.inf and result[1] == 2.0 and result[2] == 1.0
    assert np.isnan(Formula("n / n", ["n"])(n=np.zeros(2))).all()


def test_a_float32_input_keeps_its_type():
    """A float32 product stays float32, as numpy computes it (no hidden copy to float64)."""
    a = np.ones(4, np.float32)
    assert Formula("a * a", ["a"])(a=a).dtype == np.float32


def test_a_formula_without_inputs_broadcasts_to_the_inputs_given():
    """A constant formula gives one value per row of the inputs it is evaluated with."""
    assert Formula("2 * pi", ["x"])(x=np.zeros(3)).shape == ()
    f = Formula("x * 0 + 7", ["x"])
    assert_array_equal(f(x=np.zeros(3)), [7.0, 7.0, 7.0])


@pytest.mark.parametrize("text, column, words", [
    ("v + j", 5, "unknown name 'j'; the inputs are: i, v"),
    ("v.real", 1, "attributes"),
    ("v[0]", 1, "subscripts"),
    ("__import__('os')", 1, "unknown function '__import__'"),
    ("os.system('ls')", 1, "only the formula functions can be called"),
    ("v +* 2", 4, "invalid syntax"),
    ("v / 2 +", 8, "invalid syntax"),
    ("  v +  k", 8, "unknown name 'k'"),
    ("'text'", 1, "not a number"),
    ("max(v)", 1, "max() takes 2 to 16 argument(s), got 1"),
    ("sqrt(v, i)", 1, "sqrt() takes 1 argument(s), got 2"),
    ("sqrt(x=v)", 1, "no keyword arguments"),
    ("lambda: v", 1, "lambda is not allowed"),
    ("[v for v in i]", 1, "comprehensions are not allowed"),
    ("v @ i", 1, "operator MatMult is not allowed"),
    ("v is i", 1, "comparison Is is not allowed"),
    ("sqrt", 1, "'sqrt' is a function"),
    ("True + v", 1, "True is not a number"),
])
def test_construction_refuses_what_is_not_a_formula_and_names_the_column(text, column, words):
    """Every mistake fails when the formula is made, with the column of the mistake."""
    with pytest.raises(FormulaError) as caught:
        Formula(text, names=["v", "i"])
    assert caught.value.column == column
    assert f"column {column}" in str(caught.value) and words in str(caught.value)
    assert repr(text) in str(caught.value)


def test_input_names_that_are_not_identifiers_or_shadow_constants_are_refused():
    """Input names must be identifiers and must not hide pi, e, inf or nan."""
    with pytest.raises(FormulaError, match="'p-in' is not an identifier"):
        Formula("1", names=["p-in"])
    with pytest.raises(FormulaError, match="'e' is a constant"):
        Formula("e", names=["e"])


def test_power_towers_and_huge_numbers_do_not_hang():
    """9**9**9 is inf at once (floats, not Python integers); a huge literal is refused."""
    began = time.perf_counter()
    assert Formula("9**9**9", []).evaluate({}) == np.inf
    assert Formula("x ** 9 ** 9 ** 9", ["x"])(x=np.full(1000, 2.0))[0] == np.inf
    assert time.perf_counter() - began < 0.5
    with pytest.raises(FormulaError, match="too large"):
        Formula("1" + "0" * 400, [])


def test_formulas_too_long_or_too_complex_are_refused():
    """The text and its syntax tree are bounded, so an evaluation is a bounded amount of work."""
    with pytest.raises(FormulaError, match=f"at most {MAX_LENGTH}"):
        Formula("x + " * 300 + "x", ["x"])
    with pytest.raises(FormulaError, match="syntax nodes"):
        Formula("+".join(["x"] * 200), ["x"])
    with pytest.raises(FormulaError, match="syntax nodes"):
        Formula("-" * 300 + "x", ["x"])
    # Nesting as deep as the bounds allow still compiles and evaluates.
    assert Formula("-" * 100 + "x", ["x"])(x=np.ones(1))[0] == 1.0


def test_an_evaluation_past_its_time_limit_raises():
    """Each operation checks the deadline: a slow evaluation raises FormulaTimeout."""
    f = Formula("sin(x) * cos(x) + exp(x) * log(x + 2) + sqrt(x)", ["x"], timeout=1e-6)
    with pytest.raises(FormulaTimeout, match="took more than"):
        f(x=np.ones(2_000_000))


def test_a_missing_input_or_text_input_is_a_clear_error():
    """Evaluating without a used input, or with text, names the input."""
    f = Formula("a + b", ["a", "b"])
    with pytest.raises(FormulaError, match="no value for input 'b'"):
        f(a=np.ones(2))
    with pytest.raises(FormulaError, match="input 'a' holds <U1"):
        f(a=np.array(["x"]), b=np.ones(1))


def test_eval_and_exec_are_never_used_and_compile_only_parses(monkeypatch):
    """Formulas work with eval and exec unavailable, and compile allowed only to parse."""
    import ast

    real_compile = builtins.compile

    def forbidden(*args, **kwargs):
        raise RuntimeError("eval or exec was called")

    def parse_only(source, filename, mode, flags=0, *args, **kwargs):
        if not flags & ast.PyCF_ONLY_AST:
            raise RuntimeError("compile to code was called")
        return real_compile(source, filename, mode, flags, *args, **kwargs)

    monkeypatch.setattr(builtins, "eval", forbidden)
    monkeypatch.setattr(builtins, "exec", forbidden)
    monkeypatch.setattr(builtins, "compile", parse_only)
    try:
        result = Formula("v * i", ["v", "i"])(v=np.array([2.0]), i=np.array([3.0]))
    finally:
        monkeypatch.undo()
    assert result[0] == 6.0


def test_formulas_are_quiet_in_every_thread_and_leave_the_callers_error_state_alone():
    """1/0 is inf without warnings in threads evaluating at once, and each caller's numpy error state is its own after."""
    from concurrent.futures import ThreadPoolExecutor

    f = Formula("1 / n * 2", ["n"])

    def evaluate(_):
        with np.errstate(all="raise"):
            for _ in range(300):
                assert np.isinf(f(n=np.zeros(3))).all()
            with pytest.raises(FloatingPointError):
                np.divide(1.0, np.zeros(1))
        return np.geterr()["divide"]

    with ThreadPoolExecutor(4) as pool:
        states = list(pool.map(evaluate, range(8)))
    assert states == [np.geterr()["divide"]] * 8


def test_a_result_goes_into_out_only_where_it_is_the_same_bits():
    """evaluate(out=) writes into out when the last operator's operands have its dtype and shape, else returns a new array; the values are the same."""
    rng = np.random.default_rng(1)
    v, i = rng.standard_normal(1000).astype(np.float32), rng.standard_normal(1000).astype(np.float32)
    expected = Formula("v * i", ["v", "i"]).evaluate({"v": v, "i": i})
    out = np.full(1000, np.nan, np.float32)
    result = Formula("v * i", ["v", "i"]).evaluate({"v": v, "i": i}, out)
    assert result is out and result.tobytes() == expected.tobytes()
    # Another dtype, a broadcast, a function or a bare name last: a new array, out untouched.
    for text, values in [("v * i", {"v": v, "i": i.astype(np.float64)}),
                         ("v * i", {"v": v, "i": i[:1]}),
                         ("v * i * 2", {"v": v, "i": i}),  # 2 is float64
                         ("abs(v * i)", {"v": v, "i": i}),
                         ("v", {"v": v})]:
        out = np.full(1000, np.nan, np.float32)
        result = Formula(text, ["v", "i"]).evaluate(values, out)
        assert result is not out and np.isnan(out).all(), text
        assert_array_equal(result, Formula(text, ["v", "i"]).evaluate(values))


def test_inputs_given_in_order_give_what_inputs_given_by_name_give():
    """evaluate_inputs takes one array per constructor name, used or not, in that order: the same bits as evaluate, out included."""
    rng = np.random.default_rng(2)
    a, b, c = (rng.standard_normal(50).astype(np.float32) for _ in range(3))
    named = {"a": a, "b": b, "c": c}
    for text in ["a * b", "c - a", "b", "2", "b / c * 100", "max(c, a) if a > 0 else -b",
                 "0 < c <= b or not a < 1"]:
        f = Formula(text, ["a", "b", "c"])
        assert_array_equal(f.evaluate_inputs([a, b, c]), f.evaluate(named), text)
        assert f.evaluate_inputs([a, b, c]).dtype == f.evaluate(named).dtype, text
    f = Formula("c * a", ["a", "b", "c"])  # uses a and c, first c
    assert f.names == ("c", "a")
    out = np.empty(50, np.float32)
    assert f.evaluate_inputs([a, b, c], out) is out
    assert out.tobytes() == (c * a).tobytes()
    with pytest.raises(FormulaError, match="input 'a' holds <U1"):
        f.evaluate_inputs([np.array(["x"]), b, c])
