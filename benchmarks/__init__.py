"""Measured comparisons of the platform against plain DuckDB and of code-location load times.

Run ``python -m benchmarks.files --help`` from the repository root; see README.md.
"""
