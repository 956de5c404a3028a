"""
What is wrong with a pipeline file, each problem pointing at its line.
"""

from ..errors import PipelineError
from ..messages import shown

__all__ = ["Problem", "shown"]


class Problem:
    """
    One mistake in a pipeline file: a message and where it is (1-based line
    and column; 0 when the problem concerns the whole file).
    """

    def __init__(self, message, line=0, column=0, filename="<pipeline>"):
        self.message = message
        self.line = line
        self.column = column
        self.filename = filename

    def __repr__(self):
        return f"<Problem {self}>"

    def __str__(self):
        where = (f"{self.filename}:{self.line}:{self.column}" if self.line
                 else self.filename)
        return f"{where}: {self.message}"

    def __eq__(self, other):
        return (isinstance(other, Problem) and
                (self.message, self.line, self.column, self.filename) ==
                (other.message, other.line, other.column, other.filename))

    def __hash__(self):
        return hash((self.message, self.line, self.column, self.filename))


