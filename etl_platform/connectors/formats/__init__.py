"""File formats DuckDB reads, one module each, registered by name (``base.FORMAT_MODULES``)."""
