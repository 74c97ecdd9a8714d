"""Destinations other than the DuckDB warehouse: each commits rows, rejected rows and cursor together."""
