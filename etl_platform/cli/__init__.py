"""``etl-platform``: one module per command group. Nothing in the package imports it."""
