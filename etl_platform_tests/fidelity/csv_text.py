"""An RFC 4180 reader of our own, to learn what a CSV file says independently of any platform reader.

It keeps what other readers throw away: whether a field was quoted (an unquoted empty field
is NULL, a quoted ``""`` the empty string) and the physical line each record starts on.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    text: str
    quoted: bool


def decode(data: bytes) -> str:
    if data.startswith(b"\xff\xfe") or data.startswith(b"\xfe\xff"):
        return data.decode("utf-16")
    return data.decode("utf-8-sig")


def records(text: str, delimiter: str, quote: str = '"') -> list[tuple[int, list[Field]]]:
    """(start line, fields) of every record; line endings CRLF, LF or CR outside quotes."""
    out: list[tuple[int, list[Field]]] = []
    i, n, line = 0, len(text), 1
    while i < n:
        start_line = line
        fields: list[Field] = []
        while True:
            if i < n and text[i] == quote:
                i += 1
                chunk = []
                while True:
                    if i >= n:
                        raise ValueError(f"unterminated quote in the record starting on line {start_line}")
                    ch = text[i]
                    if ch == quote:
                        if i + 1 < n and text[i + 1] == quote:
                            chunk.append(quote)
                            i += 2
                            continue
                        i += 1
                        break
                    if ch == "\n":  # a line is what ends in LF (CRLF or LF); a lone CR is a character
                        line += 1
                    chunk.append(ch)
                    i += 1
                fields.append(Field("".join(chunk), True))
            else:
                j = i
                while j < n and text[j] not in (delimiter, "\n", "\r"):
                    j += 1
                fields.append(Field(text[i:j], False))
                i = j
            if i < n and text[i] == delimiter:
                i += 1
                continue
            break
        if i < n and text[i] == "\r":
            i += 1
        if i < n and text[i] == "\n":
            i += 1
        line += 1
        out.append((start_line, fields))
    return out
