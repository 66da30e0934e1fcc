"""Benchmarks: scripts that run the real processes against their own database.

Run each from the repository root, e.g. ``.venv/bin/python bench/import.py``.
"""
