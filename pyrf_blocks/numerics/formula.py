"""
A safe evaluator of arithmetic formulas over named numpy arrays.

A formula is Python expression syntax restricted to arithmetic: numbers,
the names it is given, ``+ - * / // % **``, unary ``-`` and ``+``,
comparisons (chained too), ``and``, ``or``, ``not``, ``a if c else b`` and
calls of the functions in :data:`FUNCTIONS`.  Everything is checked when the
:class:`Formula` is made (an unknown name or function, an attribute, a
subscript, a string... raises :class:`~pyrf_blocks.errors.FormulaError`
naming the column); nothing of the text is ever given to ``eval`` or
``exec``.  The checked syntax tree is turned once into a flat list of
steps, each a numpy function of earlier results (inputs, constants or
steps), run in order by one loop: evaluating costs one numpy operation per
operator over whole arrays, and no Python call per name or number.

Why it cannot hang: numbers are floats (``9**9**9`` is ``inf``, at once,
where Python integers would compute for hours), integer inputs are
converted to float64, the text is at most :data:`MAX_LENGTH` characters
and :data:`MAX_NODES` syntax nodes, so an evaluation is a bounded number
of array operations; each operation also checks a deadline
(:class:`~pyrf_blocks.errors.FormulaTimeout`).  Division by zero and
overflow give ``inf`` and ``nan`` as numpy does, without warnings.

>>> import numpy as np
>>> f = Formula("v * i * cos(phi)", names=["v", "i", "phi"])
>>> f(v=np.array([230.0]), i=np.array([2.0]), phi=np.array([0.0]))
array([460.])
"""

import ast
import contextvars
import math
import threading
import time

import numpy as np

from ..errors import FormulaError, FormulaTimeout

__all__ = ["Formula", "FUNCTIONS", "CONSTANTS", "MAX_LENGTH", "MAX_NODES"]


#: Per thread, a copy of the context made inside ``np.errstate(all="ignore")``.
_QUIET = threading.local()


def _quietly(code, registers, out):
    """
    ``code(registers, out)`` with numpy's floating-point warnings off (inf
    and nan are results, as the division gives them).  numpy keeps its
    error state in a context variable, so the code runs in a copy of the
    context made once per thread inside ``np.errstate(all="ignore")``:
    ``Context.run`` costs a third of the ``errstate`` decorator, which
    builds numpy's error state again on every call (measured: 2.6 and 7.2
    thousand instructions).  A thread enters its copy once at a time: a
    formula calls no formula.
    """
    context = getattr(_QUIET, "context", None)
    if context is None:
        with np.errstate(all="ignore"):
            context = _QUIET.context = contextvars.copy_context()
    return context.run(code, registers, out)


#: Longest formula text, in characters.
MAX_LENGTH = 1000
#: Most syntax nodes in a formula (``a * b + 1`` has 6).
MAX_NODES = 256


def _minimum(*args):
    result = args[0]
    for arg in args[1:]:
        result = np.minimum(result, arg)
    return result


def _maximum(*args):
    result = args[0]
    for arg in args[1:]:
        result = np.maximum(result, arg)
    return result


#: The functions a formula may call, by name: each a numpy function and
#: the least and most arguments it takes.  All work element by element
#: over arrays; ``min`` and ``max`` take two or more arguments
#: (``max(a, b, 0)``), not a sequence.
FUNCTIONS = {
    "abs": (np.abs, 1, 1),
    "sqrt": (np.sqrt, 1, 1),
    "exp": (np.exp, 1, 1),
    "log": (np.log, 1, 1),
    "log10": (np.log10, 1, 1),
    "sin": (np.sin, 1, 1),
    "cos": (np.cos, 1, 1),
    "tan": (np.tan, 1, 1),
    "arctan2": (np.arctan2, 2, 2),
    "hypot": (np.hypot, 2, 2),
    "floor": (np.floor, 1, 1),
    "ceil": (np.ceil, 1, 1),
    "sign": (np.sign, 1, 1),
    "isnan": (np.isnan, 1, 1),
    "min": (_minimum, 2, 16),
    "max": (_maximum, 2, 16),
    "clip": (np.clip, 3, 3),
    "where": (np.where, 3, 3),
}

#: Names a formula may use besides its inputs.
CONSTANTS = {"pi": math.pi, "e": math.e, "inf": math.inf, "nan": math.nan}

_BINARY = {
    ast.Add: np.add, ast.Sub: np.subtract, ast.Mult: np.multiply,
    ast.Div: np.true_divide, ast.FloorDiv: np.floor_divide, ast.Mod: np.mod,
    ast.Pow: np.power,
}
_UNARY = {ast.USub: np.negative, ast.UAdd: np.positive, ast.Not: np.logical_not}
_COMPARE = {
    ast.Lt: np.less, ast.LtE: np.less_equal, ast.Gt: np.greater,
    ast.GtE: np.greater_equal, ast.Eq: np.equal, ast.NotEq: np.not_equal,
}
_BOOL = {ast.And: np.logical_and, ast.Or: np.logical_or}

_WORDS = {
    ast.Attribute: "attributes (a.b)", ast.Subscript: "subscripts (a[i])",
    ast.Lambda: "lambda", ast.ListComp: "comprehensions", ast.GeneratorExp: "comprehensions",
    ast.SetComp: "comprehensions", ast.DictComp: "comprehensions", ast.List: "lists",
    ast.Tuple: "tuples", ast.Dict: "dicts", ast.Set: "sets",
    ast.NamedExpr: "assignments (:=)", ast.Starred: "starred arguments",
    ast.JoinedStr: "strings", ast.Await: "await",
    ast.Yield: "yield", ast.YieldFrom: "yield",
}


class Formula:
    """
    An arithmetic formula of named arrays, checked once and evaluated many
    times.

    Parameters
    ----------
    text : str
        The formula, e.g. ``"p_out / p_in * 100"``.
    names : iterable of str
        The input names it may use.  It need not use them all.
    timeout : float
        Most seconds one evaluation may take (checked between operations).

    Raises
    ------
    FormulaError
        The text is not a formula of these names: the message quotes it and
        names the column and the mistake.

    Attributes
    ----------
    text : str
        The formula as given.
    names : tuple of str
        The input names it uses, in order of first use.
    """

    def __init__(self, text, names, timeout=1.0):
        if not isinstance(text, str):
            raise FormulaError(f"a formula must be text, got {type(text).__name__}")
        self.text = text
        allowed = tuple(names)
        for name in allowed:
            if not isinstance(name, str) or not name.isidentifier():
                raise FormulaError(f"formula {text!r}: input name {name!r} is not an "
                                   "identifier (letters, digits and _, not first a digit)")
            if name in CONSTANTS:
                raise FormulaError(f"formula {text!r}: input name {name!r} is a constant "
                                   "of formulas; rename the input")
        self._allowed = frozenset(allowed)
        if not timeout > 0:
            raise FormulaError(f"formula {text!r}: timeout must be > 0 s, got {timeout!r}")
        self.timeout = float(timeout)
        if len(text) > MAX_LENGTH:
            raise FormulaError(f"formula of {len(text)} characters: at most {MAX_LENGTH} "
                               "are allowed")
        self._offset = len(text) - len(text.lstrip())
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as error:
            # Python gives offset 0 for a formula that ends too early
            # ("v / 2 +"): the mistake is just past its end.
            column = self._offset + (error.offset or len(text.strip()) + 1)
            raise FormulaError(f"formula {text!r}, column {column}: {error.msg}",
                               column) from None
        except (ValueError, RecursionError, MemoryError) as error:
            raise FormulaError(f"formula {text!r}: {error}") from None
        nodes = sum(1 for _ in ast.walk(tree))
        if nodes > MAX_NODES:
            raise FormulaError(f"formula {text!r} has {nodes} syntax nodes: at most "
                               f"{MAX_NODES} are allowed")
        self._used = []
        self._constants = []
        self._steps = []
        self._arithmetic = False  # whether the last step is an arithmetic operator
        result = self._compile(tree.body)
        self.names = tuple(self._used)
        self._program(result, allowed)

    def _program(self, result, allowed):
        """
        Lay the compiled steps out over one list of registers: the inputs
        (in :attr:`names` order), the constants, then each step's result.
        """
        inputs, constants = len(self._used), len(self._constants)

        def register(operand):
            kind, index = operand
            return index if kind == "input" else (
                inputs + index if kind == "constant" else inputs + constants + index)

        steps = []
        for function, operands in self._steps:
            where = [register(operand) for operand in operands]
            if len(where) == 1:
                steps.append((function, where[0], -1, None))
            elif len(where) == 2:
                steps.append((function, where[0], where[1], None))
            else:
                steps.append((function, 0, 0, tuple(where)))
        self._result = register(result)
        #: The steps but the last, and the last (``None`` without steps).
        self._body, self._last = tuple(steps[:-1]), (steps[-1] if steps else None)
        if result[0] != "step":  # a name or a constant: no step computes it
            self._body, self._last, self._arithmetic = (), None, False
        self._constants = tuple(self._constants)
        #: Where each input :attr:`names` uses is among the constructor's
        #: names (what :meth:`evaluate_inputs` is given).
        self._positions = tuple(allowed.index(name) for name in self._used)
        self._in_order = self._positions == tuple(range(len(allowed)))

    def __repr__(self):
        return f"Formula({self.text!r})"

    def __call__(self, **values):
        """
        Evaluate with the inputs given by name; see :meth:`evaluate`.
        """
        return self.evaluate(values)

    def evaluate(self, values, out=None):
        """
        The formula's value for these inputs, element by element.

        Parameters
        ----------
        values : mapping of str to array_like
            An array (or number) for each name in :attr:`names`; arrays
            broadcast together as numpy does.  Integer and boolean inputs
            are taken as float64; float and complex ones as they are.
        out : numpy.ndarray, optional
            Where the result may be written instead of a new array: it is
            when the formula's last operation is an arithmetic operator
            whose operands are arrays of ``out``'s shape and dtype, so that
            the result is the same, bit for bit.  The caller compares the
            result with ``out`` (``is``) to know.

        Returns
        -------
        numpy.ndarray
            The result, of the inputs' broadcast shape (a formula that uses
            no input gives a 0-d array).

        Raises
        ------
        FormulaError
            An input it uses is missing.
        FormulaTimeout
            The evaluation ran past :attr:`timeout` seconds.
        """
        arrays = []
        for name in self.names:
            try:
                arrays.append(values[name])
            except KeyError:
                raise FormulaError(f"formula {self.text!r}: no value for input {name!r}; "
                                   f"given: {', '.join(sorted(values)) or 'none'}") from None
        return self._evaluate(arrays, out)

    def evaluate_inputs(self, arrays, out=None):
        """
        :meth:`evaluate` with the inputs given in the order of the names the
        formula was made with (one array per name, used or not), as a
        block holds them: the same result, without a mapping.
        """
        if self._in_order:
            return self._evaluate(list(arrays), out)
        return self._evaluate([arrays[position] for position in self._positions], out)

    def _evaluate(self, arrays, out):
        """
        The formula of ``arrays`` (a list, one per name of :attr:`names`,
        in order), as :meth:`evaluate` says.
        """
        shape = None
        alike = True  # one shape: the common case (a block's synchronised inputs)
        for index, value in enumerate(arrays):
            array = value if value.__class__ is np.ndarray else np.asarray(value)
            kind = array.dtype.kind
            if kind not in "fc":
                if kind not in "biu":
                    raise FormulaError(f"formula {self.text!r}: input {self.names[index]!r} "
                                       f"holds {array.dtype} values, not numbers")
                array = array.astype(np.float64)
            if array is not value:
                arrays[index] = array
            if shape is None:
                shape = array.shape
            elif array.shape != shape:
                alike = False
        if shape is None or not alike:
            shape = np.broadcast_shapes(*(array.shape for array in arrays))
        arrays += self._constants
        if self._last is None:
            result = arrays[self._result]
        else:
            if not (out is not None and self._arithmetic and alike and shape == out.shape):
                out = None  # (into out: operands of its shape)
            result = _quietly(self._run, arrays, out)
        if type(result) is not np.ndarray:
            result = np.asarray(result)
        if result.shape != shape:
            result = np.broadcast_to(result, shape).copy()
        return result

    def _run(self, registers, out):
        """
        Run the steps over ``registers`` (inputs and constants, each step's
        result appended); the last one's result.  Each step checks the
        deadline first.  With ``out``, the last step, an arithmetic
        operator, computes into it when its operands are arrays of its
        dtype (every operator here maps two arrays of one float dtype to
        that dtype, so the bits are the same; their shape is ``out``'s).
        """
        clock = time.perf_counter
        deadline = clock() + self.timeout
        append = registers.append
        for function, a, b, more in self._body:
            if clock() > deadline:
                self._late()
            if more is not None:
                append(function(*[registers[index] for index in more]))
            elif b < 0:
                append(function(registers[a]))
            else:
                append(function(registers[a], registers[b]))
        function, a, b, more = self._last
        if clock() > deadline:
            self._late()
        if more is not None:
            return function(*[registers[index] for index in more])
        if b < 0:
            return function(registers[a])
        a, b = registers[a], registers[b]
        if out is not None:
            dtype = out.dtype
            if (a.__class__ is np.ndarray and b.__class__ is np.ndarray
                    and a.dtype is dtype and b.dtype is dtype):
                return function(a, b, out=out)
        return function(a, b)

    def _late(self):
        raise FormulaTimeout(f"formula {self.text!r} took more than {self.timeout} s")

    # Checking and compiling, node by node: each node gives its operand,
    # ("input", k), ("constant", k) or ("step", k), and appends the steps
    # that compute it, operands first.

    def _fail(self, node, message):
        column = self._offset + node.col_offset + 1
        raise FormulaError(f"formula {self.text!r}, column {column}: {message}", column)

    def _step(self, function, *operands, arithmetic=False):
        self._steps.append((function, operands))
        self._arithmetic = arithmetic
        return ("step", len(self._steps) - 1)

    def _constant(self, number):
        self._constants.append(number)
        return ("constant", len(self._constants) - 1)

    def _compile(self, node):
        method = getattr(self, "_compile_" + type(node).__name__, None)
        if method is None:
            what = _WORDS.get(type(node), type(node).__name__)
            self._fail(node, f"{what} are not allowed in a formula" if what.endswith("s")
                       or what.endswith(")") else f"{what} is not allowed in a formula")
        return method(node)

    def _compile_Constant(self, node):
        value = node.value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self._fail(node, f"{value!r} is not a number; formulas compute with numbers only")
        try:
            number = np.float64(float(value))
        except OverflowError:
            self._fail(node, "number too large")
        return self._constant(number)

    def _compile_Name(self, node):
        name = node.id
        if name in self._allowed:
            if name not in self._used:
                self._used.append(name)
            return ("input", self._used.index(name))
        if name in CONSTANTS:
            return self._constant(np.float64(CONSTANTS[name]))
        if name in FUNCTIONS:
            self._fail(node, f"{name!r} is a function: call it, {name}(...)")
        inputs = ", ".join(sorted(self._allowed)) or "none"
        self._fail(node, f"unknown name {name!r}; the inputs are: {inputs}")

    def _compile_BinOp(self, node):
        ufunc = _BINARY.get(type(node.op))
        if ufunc is None:
            self._fail(node, f"operator {type(node.op).__name__} is not allowed in a formula")
        left, right = self._compile(node.left), self._compile(node.right)
        return self._step(ufunc, left, right, arithmetic=True)

    def _compile_UnaryOp(self, node):
        ufunc = _UNARY.get(type(node.op))
        if ufunc is None:
            self._fail(node, f"operator {type(node.op).__name__} is not allowed in a formula")
        return self._step(ufunc, self._compile(node.operand))

    def _compile_BoolOp(self, node):
        ufunc = _BOOL[type(node.op)]
        values = [self._compile(value) for value in node.values]
        result = values[0]
        for value in values[1:]:
            result = self._step(ufunc, result, value)
        return result

    def _compile_Compare(self, node):
        operands = [self._compile(node.left)] + [self._compile(c) for c in node.comparators]
        ufuncs = []
        for op in node.ops:
            ufunc = _COMPARE.get(type(op))
            if ufunc is None:
                self._fail(node, f"comparison {type(op).__name__} is not allowed in a formula")
            ufuncs.append(ufunc)
        result = self._step(ufuncs[0], operands[0], operands[1])
        for ufunc, a, b in zip(ufuncs[1:], operands[1:], operands[2:]):
            result = self._step(np.logical_and, result, self._step(ufunc, a, b))
        return result

    def _compile_IfExp(self, node):
        test, body, orelse = (self._compile(node.test), self._compile(node.body),
                              self._compile(node.orelse))
        return self._step(np.where, test, body, orelse)

    def _compile_Call(self, node):
        if not isinstance(node.func, ast.Name):
            self._fail(node, "only the formula functions can be called: "
                       + ", ".join(FUNCTIONS))
        name = node.func.id
        if name not in FUNCTIONS:
            self._fail(node, f"unknown function {name!r}; the functions are: "
                       + ", ".join(FUNCTIONS))
        if node.keywords:
            self._fail(node, f"{name}() takes no keyword arguments")
        function, least, most = FUNCTIONS[name]
        if not least <= len(node.args) <= most:
            wanted = str(least) if least == most else f"{least} to {most}"
            self._fail(node, f"{name}() takes {wanted} argument(s), got {len(node.args)}")
        return self._step(function, *[self._compile(arg) for arg in node.args])
