"""Imported first by every tool: removes this folder from ``sys.path``.

Python puts a script's folder first on the path, and this folder holds ``profile.py`` (the
profiler CLI), which would shadow the standard library's ``profile`` module that torch imports
through ``cProfile``. Tools import the package, never each other, so they need no path entry.
"""
import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or ".") != _HERE]
