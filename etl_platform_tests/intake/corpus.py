"""The bad-input corpus: files a landing folder really receives, each with the outcome
a user must get. One table, ``CASES``; ``test_corpus`` runs every case through the
real ingest functions, after a good file was loaded.

An outcome is one of: ``Rejected`` (the file rejected whole, its reason matching a
pattern), ``Loaded`` (rows loaded, and rows of the file rejected with their reasons and
lines), ``Duplicate`` (skipped, its content was already loaded) or ``Refused`` (the
glob itself is refused before anything is read).
"""

import gzip
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

COLUMNS = {"id": {"type": "bigint"}, "name": {}}
GOOD_CSV = b"id,name\n1,alpha\n2,beta\n"
GOOD_ROWS = [(1, "alpha"), (2, "beta")]


@dataclass(frozen=True)
class Rejected:
    reason: str  # regex the file's reason must match


@dataclass(frozen=True)
class Loaded:
    rows: list[tuple] | int  # the rows the bad file adds (id, name), or how many
    rejected: dict[int, str] = field(default_factory=dict)  # line -> regex its reason must match


@dataclass(frozen=True)
class Duplicate:
    of: str


@dataclass(frozen=True)
class Refused:
    message: str


@dataclass(frozen=True)
class Case:
    name: str
    content: bytes | Callable[[], bytes]
    expect: Rejected | Loaded | Duplicate | Refused
    file: str = "bad.csv"
    source: dict = field(default_factory=dict)  # extra source options (format, csv, limits)
    columns: dict = field(default_factory=lambda: COLUMNS)
    good: bytes | None = None  # the file loaded first (default: GOOD_CSV in the case's format)
    glob: str | None = None

    def data(self) -> bytes:
        return self.content() if callable(self.content) else self.content


def csv(*lines: str, end: str = "\n", encoding: str = "utf-8") -> bytes:
    return (end.join(lines) + end).encode(encoding)


def gz(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=1)


def zipped(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_bomb() -> bytes:
    """64 MB of zeros in a zip archive of about 64 KB (ratio ~1000:1)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        with archive.open("bomb.csv", "w", force_zip64=True) as member:
            member.write(b"id,name\n")
            zeros = b"0" * (1 << 20)
            for _ in range(64):
                member.write(zeros)
    return buffer.getvalue()


def parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


GOOD_PARQUET = parquet(pa.table({"id": [1, 2], "name": ["alpha", "beta"]}))


def xlsx(rows: list[list], merge: str | None = None) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    for row in rows:
        book.active.append(row)
    if merge:
        book.active.merge_cells(merge)
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


GOOD_XLSX = xlsx([["id", "name"], [1, "alpha"], [2, "beta"]])


def xlsx_with(extra: dict[str, bytes], replace: dict[str, bytes] | None = None) -> Callable[[], bytes]:
    """A good workbook with parts added or replaced."""

    def build() -> bytes:
        source = zipfile.ZipFile(io.BytesIO(xlsx([["id", "name"], [3, "gamma"]])))
        parts = {name: source.read(name) for name in source.namelist()}
        parts.update(replace or {})
        parts.update(extra)
        return zipped(parts)

    return build


def entity_bomb_sheet() -> bytes:
    entities = "".join(f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10}">' for i in range(1, 10))
    return (
        '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol0 "lol">' + entities + "]>"
        '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
        '<row r="1"><c r="A1" t="inlineStr"><is><t>&lol9;</t></is></c></row></sheetData></worksheet>'
    ).encode()


OLE_ENCRYPTED = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 4096


def wide_header(columns: int) -> bytes:
    names = ["id", "name"] + [f"c{i}" for i in range(columns - 2)]
    return csv(",".join(names), ",".join(["3", "gamma"] + ["x"] * (columns - 2)))


CASES: list[Case] = [
    # --- empty, headers ---
    Case("empty file", b"", Rejected("file is empty")),
    Case("header only", csv("id,name"), Loaded([])),
    Case("whitespace only", b"\n\n  \n", Rejected("missing mapped column|cannot be read")),
    Case("duplicate header", csv("id,name,name", "3,gamma,other"), Loaded([(3, "gamma")])),
    Case("blank header", csv("id,,name", "3,x,gamma"), Loaded([(3, "gamma")])),
    Case(
        "header that is SQL",
        csv('id,"name"");DROP TABLE p.t;--"', "3,gamma"),
        Loaded([(3, "gamma")]),
        columns={"id": {"type": "bigint"}, "name": {"from": 'name");DROP TABLE p.t;--'}},
    ),
    Case(
        "header that is a path",
        csv("id,../../etc/passwd", "3,gamma"),
        Loaded([(3, "gamma")]),
        columns={"id": {"type": "bigint"}, "name": {"from": "../../etc/passwd"}},
    ),
    Case("missing mapped column", csv("identifier,label", "3,gamma"), Rejected(r"missing mapped column\(s\) id, name")),
    # --- encodings ---
    Case("UTF-8 BOM", b"\xef\xbb\xbf" + csv("id,name", "3,café"), Loaded([(3, "café")])),
    Case("Latin-1", csv("id,name", "3,café", "4,Müller", encoding="latin-1"), Loaded([(3, "café"), (4, "Müller")])),
    Case("Windows-1252 euro and quotes", csv("id,name", "3,5 € “net”", encoding="cp1252"), Loaded([(3, "5 € “net”")])),
    Case("UTF-16 LE with BOM", csv("id,name", "3,café", encoding="utf-16"), Loaded([(3, "café")])),
    Case("UTF-16 BE with BOM", b"\xfe\xff" + csv("id,name", "3,Ωmega", encoding="utf-16-be"), Loaded([(3, "Ωmega")])),
    Case("UTF-16 LE without BOM", csv("id,name", "3,gamma", encoding="utf-16-le"), Loaded([(3, "gamma")])),
    Case(
        "declared Latin-1",
        csv("id,name", "3,façade", encoding="latin-1"),
        Loaded([(3, "façade")]),
        source={"csv": {"encoding": "latin-1"}},
    ),
    Case(
        "declared UTF-8, file in Latin-1",
        csv("id,name", "3,café", encoding="latin-1"),
        Rejected("is not valid UTF-8"),
        source={"csv": {"encoding": "utf-8"}},
    ),
    Case("NUL bytes", csv("id,name", "3,gam\x00ma", "4,delta"), Rejected(r"NUL byte on line 2")),
    Case(
        "UTF-8 with one Latin-1 byte",
        csv("id,name", "3,Zoë", "4,Noël").replace(b"No\xc3\xabl", b"No\xebl"),
        Rejected(r"mixes encodings: it is UTF-8, except that byte 19 \(line 3\) is 0xeb"),
    ),
    Case(
        "Windows-1252 with one UTF-8 line",
        csv("id,name", "3,café", "4,crème", "5,élève", encoding="cp1252") + csv("6,Noël"),
        Rejected(r"mixes encodings: it is Windows-1252, but byte 35 \(line 5\) starts UTF-8 text"),
    ),
    Case(
        "Cyrillic in Windows-1251",
        csv("id,name", "3,Иван Петров", "4,Пётр Сидоров", "5,Москва", encoding="cp1251"),
        Rejected(r"it looks like cp1251.*declare source.csv.encoding: cp1251"),
    ),
    Case(
        "Shift-JIS",
        csv("id,name", "3,山田太郎", "4,東京都", "5,株式会社", encoding="shift_jis"),
        Rejected(r"it looks like cp932.*declare source.csv.encoding: cp932"),
    ),
    Case(
        "declared Windows-1251",
        csv("id,name", "3,Иван Петров", encoding="cp1251"),
        Loaded([(3, "Иван Петров")]),
        source={"csv": {"encoding": "cp1251"}},
    ),
    Case(
        "declared Shift-JIS",
        csv("id,name", "3,山田太郎", encoding="shift_jis"),
        Loaded([(3, "山田太郎")]),
        source={"csv": {"encoding": "shift_jis"}},
    ),
    Case(
        "byte undefined in Windows-1252",
        b"id,name\n3,ab\x81c\n",
        Rejected(r"byte 12 \(line 2\) is 0x81, which Windows-1252 leaves undefined"),
    ),
    Case(
        "declared Latin-1, file in Windows-1252",
        csv("id,name", "3,5 € net", encoding="cp1252"),
        Rejected(r"decodes to the control character U\+0080"),
        source={"csv": {"encoding": "latin-1"}},
    ),
    # --- structure ---
    Case(
        "ragged rows",
        csv("id,name", "3,gamma,extra", "4,delta", "5"),
        Loaded([(4, "delta")], {2: "too many columns", 4: "missing columns"}),
    ),
    # Without another quoted field the sniffer reads the file unquoted: the quote is kept as text.
    Case("unterminated quote", csv("id,name", '3,"gamma', "4,delta"), Loaded([(3, '"gamma'), (4, "delta")])),
    Case(
        "unterminated quote, quote declared",
        csv("id,name", '3,"gamma"', '4,"delta', "5,eps"),
        Rejected("missing mapped column|quote"),
        source={"csv": {"quote": '"'}},
    ),
    Case(
        "multi-line quoted field",
        csv("id,name", '3,"two\nlines"', "4,delta", "x,bad"),
        # A rejected row names the physical line it starts on, after a record spanning two lines.
        Loaded([(3, "two\nlines"), (4, "delta")], {5: "id: not a valid bigint"}),
    ),
    Case("semicolon delimiter", csv("id;name", "3;gamma", "4;delta"), Loaded([(3, "gamma"), (4, "delta")])),
    Case("tab delimiter", csv("id\tname", "3\tgamma, with comma"), Loaded([(3, "gamma, with comma")])),
    Case(
        "declared semicolon",
        csv("id;name", "3;a,b"),
        Loaded([(3, "a,b")]),
        source={"csv": {"delimiter": ";"}},
        good=csv("id;name", "1;alpha", "2;beta"),
    ),
    Case(
        "mixed CRLF and LF",
        b"id,name\r\n3,gamma\n4,delta\r\n5,epsilon\n",
        Loaded([(3, "gamma"), (4, "delta"), (5, "epsilon")]),
    ),
    Case("CR only line endings", b"id,name\r3,gamma\r4,delta\r", Loaded([(3, "gamma"), (4, "delta")])),
    Case(
        "formula cells stay text",
        csv("id,name", '3,=HYPERLINK("http://x")', "4,+1+1", "5,@SUM(A1)", "6,-2"),
        Loaded([(3, '=HYPERLINK("http://x")'), (4, "+1+1"), (5, "@SUM(A1)"), (6, "-2")]),
    ),
    Case(
        "int column turns string",
        lambda: csv("id,name", *[f"{i},n{i}" for i in range(3, 3000)], "oops,late"),
        Loaded(2997, {2999: "id: not a valid bigint"}),
    ),
    # --- values ---
    Case(
        "NaN and 1e309",
        csv("id,amount", "3,NaN", "4,1e309", "5,1.5"),
        Loaded(2, {3: "amount: not a valid double"}),
        columns={"id": {"type": "bigint"}, "amount": {"type": "double"}},
    ),
    Case("leading zeros", csv("id,name", "00123,00123"), Loaded([(123, "00123")])),
    Case(
        "impossible date",
        csv("id,day", "3,2024-02-30", "4,2024-02-29"),
        Loaded(1, {2: "day: not a valid date"}),
        columns={"id": {"type": "bigint"}, "day": {"type": "date"}},
    ),
    Case(
        "timestamp without zone",
        csv("id,at", "3,2024-03-01 10:00:00", "4,2024-03-01T10:00:00+02:00"),
        Loaded(2),
        columns={"id": {"type": "bigint"}, "at": {"type": "timestamptz"}},
    ),
    Case(
        "one huge field",
        lambda: csv("id,name", "3," + "x" * 3_000_000, "4,delta"),
        Rejected(r"Maximum line size of 2000000 bytes exceeded"),
    ),
    # --- limits, each exceeded by one ---
    Case(
        "bytes limit exceeded by one",
        csv("id,name", "3,gamma-ray"),
        Rejected(r"20 bytes, over the limit of 19 \(limits.max_file_bytes\)"),
        source={"limits": {"max_file_bytes": 19}},
        good=csv("id,name", "1,a", "2,b"),
    ),
    Case(
        "bytes limit met exactly",
        csv("id,name", "3,gamma-ray"),
        Loaded([(3, "gamma-ray")]),
        source={"limits": {"max_file_bytes": 20}},
        good=csv("id,name", "1,a", "2,b"),
    ),
    Case(
        "rows limit exceeded by one",
        csv("id,name", "3,c", "4,d", "5,e"),
        Rejected(r"file has more than 2 rows, the limit \(limits.max_rows\); reading stopped there"),
        source={"limits": {"max_rows": 2}},
    ),
    Case(
        "rows limit met exactly",
        csv("id,name", "3,c", "4,d"),
        Loaded([(3, "c"), (4, "d")]),
        source={"limits": {"max_rows": 2}},
    ),
    Case(
        "columns limit exceeded by one",
        lambda: wide_header(11),
        Rejected(r"11 columns, over the limit of 10 \(limits.max_columns\)"),
        source={"limits": {"max_columns": 10}},
    ),
    Case(
        "field length exceeded by one",
        csv("id,name", "3,abcde", "4,abcdef"),
        Rejected(r"column 'name' of data row 2 is 6 characters long, over the limit of 5 \(limits.max_field_chars\)"),
        source={"limits": {"max_field_chars": 5}},
        good=csv("id,name", "1,alpha", "2,beta"),
    ),
    # --- compression ---
    Case(
        "gzip CSV",
        lambda: gz(csv("id,name", "3,gamma")),
        Loaded([(3, "gamma")]),
        file="bad.csv.gz",
        glob="*.csv*",
        source={"format": "csv"},
    ),
    Case("gzip CSV named .csv", lambda: gz(csv("id,name", "3,gamma")), Loaded([(3, "gamma")])),
    Case(
        "gzip over the limit",
        lambda: gz(csv("id,name", *[f"{i},name{i}" for i in range(3, 20_000)])),
        Rejected(
            r"decompresses to more than the limit of 100,000 bytes \(limits.max_decompressed_bytes\); decompression "
            r"was stopped"
        ),
        file="bad.csv.gz",
        glob="*.csv*",
        source={"format": "csv", "limits": {"max_decompressed_bytes": 100_000}},
    ),
    Case(
        "zip bomb",
        zip_bomb,
        Rejected(r"holds bomb.csv of 67,108,872 bytes, over the limit of 1,000,000 \(limits.max_decompressed_bytes\)"),
        file="bad.zip",
        glob="*",
        source={"format": "csv", "limits": {"max_decompressed_bytes": 1_000_000}},
    ),
    Case(
        "truncated gzip",
        lambda: gz(csv("id,name", *[f"{i},n" for i in range(3, 5000)]))[:-200],
        Rejected("not a readable gzip file"),
        file="bad.csv.gz",
        glob="*.csv*",
        source={"format": "csv"},
    ),
    Case(
        "zip with two files",
        lambda: zipped({"a.csv": GOOD_CSV, "b.csv": GOOD_CSV}),
        Rejected("holding 2 files"),
        file="bad.zip",
        glob="*",
        source={"format": "csv"},
    ),
    Case(
        "zip with one CSV",
        lambda: zipped({"export/data.csv": csv("id,name", "3,gamma")}),
        Loaded([(3, "gamma")]),
        file="bad.zip",
        glob="*",
        source={"format": "csv"},
    ),
    # --- content is not what the name says ---
    Case(
        "CSV named .parquet",
        csv("id,name", "3,gamma"),
        Rejected(r"is not a Parquet file: the content is text"),
        file="bad.parquet",
        glob="*.parquet",
        good=GOOD_PARQUET,
    ),
    Case(
        "corrupt Parquet footer",
        lambda: parquet(pa.table({"id": [3], "name": ["gamma"]}))[:-10],
        Rejected("Parquet footer is missing or corrupt"),
        file="bad.parquet",
        glob="*.parquet",
        good=GOOD_PARQUET,
    ),
    Case("PNG named .csv", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, Rejected("is a PNG image, not CSV text")),
    Case(
        "xlsx named .csv",
        GOOD_XLSX,
        Rejected(
            r"is an Excel workbook \(.xlsx\), not a zip archive of one data file; an .xlsx file needs format: xlsx"
        ),
    ),
    Case("Parquet named .csv", GOOD_PARQUET, Rejected("is a Parquet file, not CSV text")),
    # --- JSON ---
    Case(
        "truncated JSON",
        b'[{"id": 3, "name": "gamma"}, {"id": 4, "na',
        Rejected("cannot be read as json"),
        file="bad.json",
        glob="*.json",
        good=b'[{"id": 1, "name": "alpha"}, {"id": 2, "name": "beta"}]',
    ),
    # Valid JSON however deep: the nested value is the column's text.
    Case(
        "deep nesting",
        lambda: b'[{"id": 3, "name": ' + b"[" * 100_000 + b"]" * 100_000 + b"}]",
        Loaded(1),
        file="bad.json",
        glob="*.json",
        good=b'[{"id": 1, "name": "alpha"}, {"id": 2, "name": "beta"}]',
    ),
    Case(
        "duplicate keys",
        b'[{"id": 3, "name": "first", "name": "second"}]',
        Loaded(0, {1: "a key appears twice in the record"}),
        file="bad.json",
        glob="*.json",
        good=b'[{"id": 1, "name": "alpha"}, {"id": 2, "name": "beta"}]',
    ),
    Case(
        "scalar at top level",
        b"42\n",
        Rejected(r"starts with '4'"),
        file="bad.json",
        glob="*.json",
        good=b'[{"id": 1, "name": "alpha"}, {"id": 2, "name": "beta"}]',
    ),
    Case(
        "one bad NDJSON line",
        b'{"id": 3, "name": "gamma"}\n{"id": 4, "name": \n{"id": 5, "name": "e"}\n',
        Loaded([(3, "gamma"), (5, "e")], {2: "not valid JSON"}),
        file="bad.ndjson",
        glob="*.ndjson",
        good=b'{"id": 1, "name": "alpha"}\n{"id": 2, "name": "beta"}\n',
    ),
    Case(
        "JSON in UTF-16",
        '[{"id": 3, "name": "café"}]'.encode("utf-16"),
        Loaded([(3, "café")]),
        file="bad.json",
        glob="*.json",
        good=b'[{"id": 1, "name": "alpha"}, {"id": 2, "name": "beta"}]',
    ),
    Case(
        "JSON with a UTF-8 BOM",
        b'\xef\xbb\xbf[{"id": 3, "name": "gamma"}]',
        Loaded([(3, "gamma")]),
        file="bad.json",
        glob="*.json",
        good=b'[{"id": 1, "name": "alpha"}, {"id": 2, "name": "beta"}]',
    ),
    Case(
        "NDJSON in Latin-1",
        '{"id": 3, "name": "café"}\n'.encode("latin-1"),
        Loaded([(3, "café")]),
        file="bad.ndjson",
        glob="*.ndjson",
        good=b'{"id": 1, "name": "alpha"}\n{"id": 2, "name": "beta"}\n',
    ),
    Case(
        "JSON wrong type",
        b'[{"id": "three", "name": "gamma"}, {"id": 4, "name": "delta"}]',
        Loaded([(4, "delta")], {1: "id"}),
        file="bad.json",
        glob="*.json",
        good=b'[{"id": 1, "name": "alpha"}, {"id": 2, "name": "beta"}]',
    ),
    # --- Excel ---
    Case(
        "xlsx XML entity bomb",
        xlsx_with({}, {"xl/worksheets/sheet1.xml": entity_bomb_sheet()}),
        Rejected("DOCTYPE or XML entities"),
        file="bad.xlsx",
        glob="*.xlsx",
        good=GOOD_XLSX,
    ),
    Case(
        "xlsx with macros",
        xlsx_with({"xl/vbaProject.bin": b"\x00" * 128}),
        Rejected("contains macros"),
        file="bad.xlsx",
        glob="*.xlsx",
        good=GOOD_XLSX,
    ),
    Case("encrypted xlsx", OLE_ENCRYPTED, Rejected("encrypted"), file="bad.xlsx", glob="*.xlsx", good=GOOD_XLSX),
    Case(
        "xlsx that is CSV",
        csv("id,name", "3,gamma"),
        Rejected("not an .xlsx workbook"),
        file="bad.xlsx",
        glob="*.xlsx",
        good=GOOD_XLSX,
    ),
    Case(
        "xlsx merged cells",
        lambda: xlsx([["id", "name"], [3, "merged"], [4, None]], merge="B2:B3"),
        Loaded([(3, "merged"), (4, None)]),
        file="bad.xlsx",
        glob="*.xlsx",
        good=GOOD_XLSX,
    ),
    # --- duplicates and versions ---
    Case("same bytes renamed", GOOD_CSV, Duplicate("good.csv")),
    Case(
        "same name, new content",
        csv("id,name", "1,alpha", "2,beta", "3,gamma"),
        Loaded([(1, "alpha"), (2, "beta"), (3, "gamma")]),
        file="good.csv",
    ),
    # --- paths ---
    Case("name that is a glob", csv("id,name", "3,gamma"), Loaded([(3, "gamma")]), file="[gb]ood.csv"),
    Case(
        "name with quotes, spaces and %", csv("id,name", "3,gamma"), Loaded([(3, "gamma")]), file="it's 100% {a,b}.csv"
    ),
    Case("glob escaping the folder", GOOD_CSV, Refused("'..' is not allowed"), glob="../*.csv"),
    Case("absolute glob", GOOD_CSV, Refused("not an absolute path"), glob="/etc/*.csv"),
]
