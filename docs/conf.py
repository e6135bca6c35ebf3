"""Sphinx configuration for the fanout documentation (built with -W by the test suite)."""

import fanout

project = "fanout"
author = "the fanout authors"
copyright = "2026, the fanout authors"
release = fanout.__version__
version = release

extensions = ["sphinx.ext.autodoc", "sphinx.ext.intersphinx"]
exclude_patterns = ["_build"]
html_theme = "alabaster"
intersphinx_mapping: dict = {}  # offline builds: no inventories fetched
nitpicky = True
