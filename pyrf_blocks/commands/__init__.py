"""
Subcommands of ``pyrf-blocks``, one module each.
"""
