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
# Offline builds have no intersphinx inventory for the standard library; private modules are not documented.
nitpick_ignore_regex = [
    (r"py:(class|mod|func|exc)", r"(ast|concurrent|collections|functools|os|logging|typing|pathlib)(\..*)?"),
    (r"py:class", r"fanout\._.*"),
]
