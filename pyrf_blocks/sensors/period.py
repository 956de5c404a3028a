"""
When a pipeline takes messages at all: its active period.

Four kinds, as the seed lists them: ``permanent``; ``from_date`` (from a
date on); ``to_date`` (from now until a date); ``date_range`` (between two
date-times).  Times are integer nanoseconds since the Unix epoch, UTC.
"""

import time as _time

__all__ = ["ActivePeriod", "PERIOD_KINDS"]

PERIOD_KINDS = ("permanent", "from_date", "to_date", "date_range")


class ActivePeriod:
    """
    ``[start, end)`` in ns; either may be None (unbounded).  ``to_date``
    starts when the period is made.
    """

    def __init__(self, kind="permanent", start=None, end=None, now=None):
        if kind not in PERIOD_KINDS:
            raise ValueError(f"active_period: type {kind!r}; one of {', '.join(PERIOD_KINDS)}")
        if kind == "permanent":
            start = end = None
        elif kind == "from_date":
            end = None
            if start is None:
                raise ValueError("active_period: from_date needs a start")
        elif kind == "to_date":
            start = _time.time_ns() if now is None else now
            if end is None:
                raise ValueError("active_period: to_date needs an end")
        elif start is None or end is None:
            raise ValueError("active_period: date_range needs a start and an end")
        if start is not None and end is not None and end <= start:
            raise ValueError("active_period: the end is not after the start")
        self.kind = kind
        self.start = start
        self.end = end

    def __repr__(self):
        return f"<ActivePeriod {self.kind} {self.start}..{self.end}>"

    def active(self, time):
        """
        Whether a message at ``time`` (ns) is taken.
        """
        return ((self.start is None or time >= self.start) and
                (self.end is None or time < self.end))
