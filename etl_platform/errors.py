"""How an error is shown in one line."""


def first_line(err: BaseException) -> str:
    """The first non-empty line of an error's message, or its type's name when the message is
    empty (``str(KeyError())`` is ''): never an IndexError of its own."""
    for line in str(err).splitlines():
        if line.strip():
            return line.strip()
    return type(err).__name__
