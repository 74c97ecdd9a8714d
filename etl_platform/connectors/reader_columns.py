"""Columns a reader may deliver beside the data."""

# A file format may deliver this column beside the data: NULL for a sound row, else the reason
# the reader could not give the row's values (an .xlsx formula without a saved result, ...).
# The row is rejected with that reason, like a value that does not convert.
ROW_ERRORS = "__etl_row_errors"
