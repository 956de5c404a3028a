"""
The blocks: sources, spectral processing, measurements and sinks.
"""
