"""
The numerics behind the blocks: pure functions over numpy arrays, with the
units they take and return in their docstrings.  Blocks only wire them.
"""
