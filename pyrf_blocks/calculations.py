"""
Calculations our own workers serve under seed 001's API, so that
:class:`~pyrf_blocks.blocks.external.external_calculation` can route a
variable to a ring of ``pyrf-blocks worker`` processes exactly as it does
to services written in another language.

A calculation is a pure function of ``(state, times, values)`` giving the
new state and the result; its state is a flat JSON object (also
msgpack-encodable) of numbers or nulls that carries the calculation's
``version``, so a state written by another version is refused rather than
misread.  Registered here:

==============  ==================================  ===========================
``mean``        running mean of every value         ``{count, sum}``
``integral``    trapezoidal integral over device    ``{last_time, last_value,
                time, value × seconds (power in W   total}``
                gives an energy counter in J)
``max``         largest value so far                ``{max}``
==============  ==================================  ===========================

:class:`CalculationService` keeps one state per (calculation, variable) for
``PROCESS`` and ``GET_STATE``; it forgets the least recently used when it
holds more than ``max_variables``, which costs the caller only a rebuild
(``PROCESS`` on a forgotten variable is :class:`~pyrf_blocks.errors.NoCalculationState`, and the caller
sends ``PROCESS_STATE`` from what it kept)::

    from pyrf_blocks.calculations import CalculationService

    service = CalculationService()
    state, result = service.process_state("mean", "v", 2, None,
                                          {"times": [1, 2], "values": [1.0, 3.0]})
    print(result, service.process("mean", "v", 3, {"times": [3], "values": [5.0]}))

prints ``2.0 3.0``.
"""

import math
import re
from collections import OrderedDict
from dataclasses import dataclass

from .errors import NoCalculationState, UnknownCalculation

__all__ = ["Calculation", "CalculationService", "CALCULATIONS", "calculation",
           "MAX_VARIABLES", "MAX_VALUES"]

#: Variables (all calculations together) a service keeps states for.
MAX_VARIABLES = 100_000
#: Values in one request's ``args``.
MAX_VALUES = 65_536
_VARIABLE = re.compile(r"[^\x00-\x1f\x7f]{1,200}\Z")


@dataclass(frozen=True)
class Calculation:
    """
    A registered calculation: ``step(state, times, values) → (state,
    result)`` from ``initial`` (without its version), pure.
    """

    name: str
    version: int
    initial: dict
    step: object
    doc: str

    def check_state(self, state):
        """
        ``state`` (a state object, or None for the initial one) as the
        step takes it.

        :raises ValueError: naming what is wrong with it.
        """
        if state is None:
            return dict(self.initial)
        if not isinstance(state, dict):
            raise ValueError(f"a {self.name} state is an object, not {state!r:.80}")
        version = state.get("version")
        if version != self.version:
            raise ValueError(f"a {self.name} state of version {version!r}; this worker's "
                             f"{self.name} is version {self.version}")
        fields = set(state) - {"version"}
        if fields != set(self.initial):
            raise ValueError(f"a {self.name} state has {', '.join(sorted(self.initial))}, "
                             f"not {', '.join(sorted(map(str, fields))) or 'nothing'}")
        checked = {}
        for field in self.initial:
            value = state[field]
            if value is not None and (isinstance(value, bool)
                                      or not isinstance(value, (int, float))):
                raise ValueError(f"{self.name} state {field} is a number or null, "
                                 f"not {value!r:.80}")
            checked[field] = value
        return checked

    def run(self, state, times, values):
        """The new state (with its version) and the result."""
        state, result = self.step(self.check_state(state), times, values)
        return dict(state, version=self.version), result


#: Registered calculations by name.
CALCULATIONS = {}


def calculation(name, version, **initial):
    """
    Register ``step(state, times, values) → (state, result)`` as the
    calculation ``name`` whose first state is ``initial``.
    """
    def register(step):
        if name in CALCULATIONS:
            raise ValueError(f"calculation {name!r} is registered already")
        CALCULATIONS[name] = Calculation(name, version, dict(initial), step,
                                         " ".join((step.__doc__ or "").split()))
        return step
    return register


def _checked_args(args):
    """``(times, values)`` of a request's ``args``; ValueError naming what is wrong."""
    if not isinstance(args, dict) or set(args) != {"times", "values"}:
        raise ValueError("args is {\"times\": [ns...], \"values\": [numbers...]}")
    times, values = args["times"], args["values"]
    if not isinstance(times, list) or not isinstance(values, list) or len(times) != len(values):
        raise ValueError("args' times and values are lists of the same length")
    if len(values) > MAX_VALUES:
        raise ValueError(f"{len(values)} values in one request; at most {MAX_VALUES}")
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in times):
        raise ValueError("args' times are integers (ns)")
    if any(b <= a for a, b in zip(times, times[1:])):
        raise ValueError("args' times must increase")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        raise ValueError("args' values are numbers")
    return times, [float(v) for v in values]


class CalculationService:
    """
    Seed 001's three requests over the registered calculations, with the
    states of the variables in memory (see the module's docstring).
    """

    def __init__(self, calculations=None, max_variables=MAX_VARIABLES):
        self.calculations = CALCULATIONS if calculations is None else calculations
        self.max_variables = max_variables
        self._states = OrderedDict()  # (calculation, variable) -> state
        #: Requests answered, by (calculation, request).
        self.requests = {}

    @property
    def variables(self):
        """How many variables have a state here."""
        return len(self._states)

    def _calculation(self, name, var, time):
        found = self.calculations.get(name)
        if found is None:
            known = ", ".join(sorted(self.calculations)) or "none"
            raise UnknownCalculation(f"no calculation {name!r} on this worker (it has {known})")
        if not isinstance(var, str) or not _VARIABLE.match(var):
            raise ValueError(f"var is a name of 1 to 200 printable characters, not {var!r:.80}")
        if isinstance(time, bool) or not isinstance(time, int):
            raise ValueError(f"time is an integer (ns), not {time!r:.80}")
        return found

    def _count(self, name, request):
        key = (name, request)
        self.requests[key] = self.requests.get(key, 0) + 1

    def _keep(self, key, state):
        self._states[key] = state
        self._states.move_to_end(key)
        while len(self._states) > self.max_variables:
            self._states.popitem(last=False)

    def _kept(self, name, var):
        state = self._states.get((name, var))
        if state is None:
            raise NoCalculationState(f"no {name} state for {var!r} here")
        return state

    def process(self, name, var, time, args):
        """``PROCESS``: the result from the state kept for ``var``."""
        found = self._calculation(name, var, time)
        times, values = _checked_args(args)
        state, result = found.run(self._kept(name, var), times, values)
        self._keep((name, var), state)
        self._count(name, "process")
        return result

    def process_state(self, name, var, time, state, args):
        """``PROCESS_STATE``: ``(state, result)`` from ``state``, which is kept."""
        found = self._calculation(name, var, time)
        times, values = _checked_args(args)
        state, result = found.run(state, times, values)
        self._keep((name, var), state)
        self._count(name, "process_state")
        return state, result

    def get_state(self, name, var, time):
        """``GET_STATE``: the state kept for ``var``."""
        self._calculation(name, var, time)
        state = self._kept(name, var)
        self._count(name, "get_state")
        return state


# The calculations.

@calculation("mean", 1, count=0, sum=0.0)
def mean(state, times, values):
    """Running mean of every value so far."""
    count, total = state["count"] + len(values), state["sum"] + math.fsum(values)
    return {"count": count, "sum": total}, (total / count if count else None)


@calculation("integral", 1, last_time=None, last_value=None, total=0.0)
def integral(state, times, values):
    """
    Trapezoidal integral of the values over device time (value × s): of
    power in W, the energy in J.  Rows at or before the last one counted
    are refused.
    """
    last_time, last_value, total = state["last_time"], state["last_value"], state["total"]
    if times and last_time is not None and times[0] <= last_time:
        raise ValueError(f"integral: time {times[0]} is not after the last one counted, "
                         f"{last_time}")
    for time, value in zip(times, values):
        if last_time is not None:
            total += (time - last_time) / 1e9 * (value + last_value) / 2
        last_time, last_value = time, value
    return {"last_time": last_time, "last_value": last_value, "total": total}, total


@calculation("max", 1, max=None)
def maximum(state, times, values):
    """Largest value so far."""
    largest = state["max"]
    for value in values:
        if largest is None or value > largest:
            largest = value
    return {"max": largest}, largest
