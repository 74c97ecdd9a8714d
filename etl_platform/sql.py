"""Quoting for SQL text built from user input: every identifier and literal goes through here."""


def quote(identifier: str) -> str:
    """A safely quoted SQL identifier: a column or table name from a file header cannot inject SQL."""
    if "\x00" in identifier:
        raise ValueError("identifier contains a NUL byte")
    return '"' + identifier.replace('"', '""') + '"'


def qualified(schema: str, table: str) -> str:
    return f"{quote(schema)}.{quote(table)}"


def literal(value: str) -> str:
    """A safely quoted SQL string literal."""
    if "\x00" in value:
        raise ValueError("string contains a NUL byte")
    return "'" + value.replace("'", "''") + "'"
