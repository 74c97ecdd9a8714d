"""The DuckDB warehouse: its tables by sync mode, the pipelines' state, and the warehouse as a destination."""
