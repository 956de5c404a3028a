"""
Sphinx configuration for the pyrf_blocks documentation.
"""

import os
import sys

sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("_ext"))

project = "pyrf_blocks"
author = "pyrf_blocks developers"
copyright = "2026, pyrf_blocks developers"
release = "0.1.0"

extensions = ["sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.intersphinx",
              "pipeline_reference"]
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
# Interfaces and Twisted types are named in docstrings as plain text.
nitpicky = False
exclude_patterns = ["_build", "_ext"]
html_theme = "alabaster"
intersphinx_mapping = {}
