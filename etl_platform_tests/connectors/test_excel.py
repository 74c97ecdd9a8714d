"""The ``xlsx`` file format: a worksheet streamed to text columns that DuckDB scans."""

import datetime
import gc
import re
import tempfile
import zipfile
from pathlib import Path

import duckdb
import openpyxl
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openpyxl.styles import Font

from etl_platform.connectors import excel, excel_archive
from etl_platform.connectors.formats.base import file_format, missing_columns
from etl_platform.connectors.formats.xlsx import XlsxFormat
from etl_platform.connectors.reader_columns import ROW_ERRORS
from etl_platform.destinations.warehouse.tables import TableRef
from etl_platform.spec.columns import ColumnSpec
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.sources import CsvOptions, ExcelOptions
from etl_platform.steps import ingest, load_result, load_target
from etl_platform_tests.conftest import examples


@pytest.fixture
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


def workbook(
    path: Path, rows: list[list], title: str = "Sheet1", more_sheets: dict[str, list[list]] | None = None
) -> Path:
    book = openpyxl.Workbook()
    book.active.title = title
    for row in rows:
        book.active.append(row)
    for name, sheet_rows in (more_sheets or {}).items():
        sheet = book.create_sheet(name)
        for row in sheet_rows:
            sheet.append(row)
    path.parent.mkdir(parents=True, exist_ok=True)
    book.save(path)
    return path


def read(con, fmt: XlsxFormat, path: Path) -> tuple[list[str], list[tuple]]:
    """The sheet's column names and rows as the scan delivers them; no row has an error."""
    columns, _ = fmt.inspect(con, path, {})
    relation = con.execute(f"SELECT * EXCLUDE ({ROW_ERRORS}) FROM {fmt.scan(path, {})}")
    assert {column[1] for column in relation.description} <= {"STRING", "VARCHAR"}
    rows = relation.fetchall()
    assert row_errors(con, fmt, path) == [None] * len(rows)
    return columns, rows


def row_errors(con, fmt: XlsxFormat, path: Path, columns: dict | None = None) -> list[str | None]:
    """Per data row, why the scan says its values cannot be given (stage.ROW_ERRORS)."""
    return [r[0] for r in con.execute(f"SELECT {ROW_ERRORS} FROM {fmt.scan(path, columns or {})}").fetchall()]


def xlsx(**options) -> XlsxFormat:
    return XlsxFormat(ExcelOptions(**options)) if options else file_format("xlsx", CsvOptions())


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3, "3"),
        (3.0, "3"),
        (-2.5, "-2.5"),
        (0.1, "0.1"),
        (0.1 + 0.2, "0.30000000000000004"),  # a different number from 0.3, kept exactly
        (0.0, "0"),
        (1.5e-7, "0.00000015"),
        (1e20, "100000000000000000000"),
        (1.234567890123457e19, "12345678901234570000"),
        (True, "true"),
        (False, "false"),
        (datetime.datetime(2024, 1, 31), "2024-01-31"),
        (datetime.datetime(2024, 1, 31, 10, 30), "2024-01-31T10:30:00"),
        (datetime.datetime(2024, 1, 31, 10, 30, 0, 500_000), "2024-01-31T10:30:00.500000"),
        (datetime.date(2024, 2, 29), "2024-02-29"),
        (datetime.time(8, 15), "08:15:00"),
        (datetime.timedelta(hours=26, minutes=5), "26:05:00"),
        (-datetime.timedelta(minutes=90), "-1:30:00"),
        ("  text kept as is ", "  text kept as is "),
        ("", None),
        (None, None),
    ],
)
def test_cell_text(value, text):
    assert excel.cell_text(value) == text


def test_typed_cells_are_read_as_the_text_excel_shows(con, tmp_path):
    path = workbook(
        tmp_path / "orders.xlsx",
        [
            ["id", "amount", "ordered at", "day", "paid", "note", "at"],
            [
                1,
                3.0,
                datetime.datetime(2024, 1, 31, 10, 30),
                datetime.date(2024, 2, 1),
                True,
                "first",
                datetime.time(8, 15),
            ],
            [2, 0.1, datetime.datetime(2024, 1, 31), None, False, "", None],
            [3, 12.75, None, datetime.date(2024, 2, 3), None, "#N/A", None],
        ],
    )
    fmt = xlsx()
    columns, rows = read(con, fmt, path)
    assert columns == ["id", "amount", "ordered at", "day", "paid", "note", "at"]
    assert rows == [
        ("1", "3", "2024-01-31T10:30:00", "2024-02-01", "true", "first", "08:15:00"),
        ("2", "0.1", "2024-01-31", None, "false", None, None),
        ("3", "12.75", None, "2024-02-03", None, "#N/A", None),
    ]
    # The text casts back to what the cells held.
    scan = fmt.scan(path, {})
    assert con.execute(
        f"SELECT amount::DECIMAL(10,2), \"ordered at\"::TIMESTAMP, day::DATE, paid::BOOLEAN FROM {scan} WHERE id = '1'"
    ).fetchone() == (pytest.approx(3), datetime.datetime(2024, 1, 31, 10, 30), datetime.date(2024, 2, 1), True)


def test_formulas_give_the_result_saved_with_the_workbook(con, tmp_path):
    path = workbook(tmp_path / "f.xlsx", [["qty", "price", "total"], [2, 21, "=A2*B2"], [3, 5, "=A3*B3"]])
    # openpyxl saves formulas without results; save them the way a spreadsheet program would.
    save_formula_results(path, {"A2*B2": "42", "A3*B3": "15"}, calculated=True)
    _, rows = read(con, xlsx(), path)
    assert rows == [("2", "21", "42"), ("3", "5", "15")]


def save_formula_results(path: Path, results: dict[str, str], calculated: bool = False) -> None:
    """Give formulas saved results; ``calculated``: also clear the mark openpyxl sets that asks
    for recalculation on opening, as a spreadsheet program saving its own results does."""
    with zipfile.ZipFile(path) as source:
        members = {info.filename: source.read(info) for info in source.infolist()}
    sheet = members["xl/worksheets/sheet1.xml"].decode()
    for formula, value in results.items():
        sheet, count = re.subn(rf"<f>{re.escape(formula)}</f>\s*<v\s*/>", f"<f>{formula}</f><v>{value}</v>", sheet)
        assert count == 1, sheet
    members["xl/worksheets/sheet1.xml"] = sheet.encode()
    if calculated:
        book = members["xl/workbook.xml"].decode()
        assert 'fullCalcOnLoad="1"' in book
        members["xl/workbook.xml"] = book.replace('fullCalcOnLoad="1"', "").encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in members.items():
            target.writestr(name, data)


def test_column_names_are_made_unique_like_csv_columns(con, tmp_path):
    path = workbook(
        tmp_path / "h.xlsx",
        [["a", "a", None, 2024, "b", None, None], ["1", "2", "3", "4", "5", "beyond the last name", None]],
    )
    columns, rows = read(con, xlsx(), path)
    assert columns == ["a", "a_1", "column2", "2024", "b"]
    assert rows == [("1", "2", "3", "4", "5")]
    assert xlsx().columns(con, path) == columns


def test_blank_rows_between_data_are_kept_blank_rows_after_it_are_not(con, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["id", "name"])  # row 1
    sheet.append([1, "a"])  # row 2
    sheet.append([])  # row 3
    sheet.append([None, "c"])  # row 4
    for row in range(5, 9):  # formatted but empty: present in the file, no values
        sheet.cell(row=row, column=1).font = Font(bold=True)
    book.save(tmp_path / "blank.xlsx")
    fmt = xlsx()
    _, rows = read(con, fmt, tmp_path / "blank.xlsx")
    assert rows == [("1", "a"), (None, None), (None, "c")]
    assert fmt.first_data_line() == 2  # data row n is Excel row n + 1


def test_the_first_sheet_is_read_unless_one_is_named(con, tmp_path):
    path = workbook(
        tmp_path / "book.xlsx",
        [["summary"], ["not the data"]],
        title="Summary",
        more_sheets={"Orders": [["id", "amount"], [7, 70]]},
    )
    assert read(con, xlsx(), path) == (["summary"], [("not the data",)])
    assert read(con, xlsx(sheet="Orders"), path) == (["id", "amount"], [("7", "70")])
    with pytest.raises(duckdb.Error, match="no sheet named 'Order'; its sheets are 'Summary', 'Orders'"):
        xlsx(sheet="Order").inspect(con, path, {})


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"id,amount\n1,2\n", "not a readable .xlsx workbook"),
        (None, "row 1 is empty; it must hold the column names"),
    ],
)
def test_unreadable_workbooks_fail_like_unreadable_files(con, tmp_path, content, message):
    path = tmp_path / "bad.xlsx"
    if content is None:
        workbook(path, [[], ["data without names"]])
    else:
        path.write_bytes(content)
    for read_it in (
        lambda fmt: fmt.columns(con, path),
        lambda fmt: fmt.inspect(con, path, {}),
        lambda fmt: fmt.scan(path, {}),
    ):
        with pytest.raises(duckdb.Error, match=message):
            read_it(xlsx())


def test_a_large_sheet_is_streamed_batch_by_batch(con, tmp_path):
    path = tmp_path / "large.xlsx"
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Data")
    sheet.append(["id", "customer", "amount", "ordered"])
    for n in range(1, 50_001):
        sheet.append([n, f"customer {n % 977}", n * 0.25, datetime.date(2024, 1, 1) + datetime.timedelta(days=n % 366)])
    book.save(path)

    columns = excel.to_parquet(path, tmp_path / "large.parquet")
    assert columns == ["id", "customer", "amount", "ordered"]
    # Written as it was read, one batch of rows at a time: a row group per batch.
    assert pq.ParquetFile(tmp_path / "large.parquet").metadata.num_row_groups == 50_000 // excel.ROWS_PER_BATCH
    count, ordered, last = con.execute(
        f"SELECT count(*), bool_and(id::BIGINT = row_number), max_by(amount, id::BIGINT) "
        f"FROM (SELECT *, row_number() OVER () AS row_number FROM read_parquet('{tmp_path / 'large.parquet'}'))"
    ).fetchone()
    assert (count, ordered, last) == (50_000, True, "12500")


def test_the_converted_files_are_removed_with_the_format(con, tmp_path):
    path = workbook(tmp_path / "a.xlsx", [["id"], [1]])
    fmt = xlsx()
    fmt.inspect(con, path, {})
    folder = fmt._folder
    assert folder is not None and any(folder.iterdir())
    fmt.close()
    assert not folder.exists()

    fmt = xlsx()
    fmt.inspect(con, path, {})
    folder = fmt._folder
    del fmt
    gc.collect()
    assert not folder.exists()


def test_a_load_reports_rejected_rows_by_their_excel_row(tmp_path):
    landing = tmp_path / "landing"
    workbook(
        landing / "orders" / "jan.xlsx",
        [
            ["Order", "Amount", "Day"],  # row 1
            [1, 10.5, datetime.date(2024, 1, 1)],  # row 2
            [],  # row 3: blank between data rows
            [3, "ten", datetime.date(2024, 1, 3)],  # row 4: not a number
            [4, -1, datetime.date(2024, 1, 4)],  # row 5: breaks the rule
            [5, 3.0, datetime.datetime(2024, 1, 5)],  # row 6
        ],
    )
    (landing / "orders" / "feb.xlsx").write_bytes(b"not a workbook")
    spec = PipelineSpec.model_validate(
        {
            "source": {
                "files": "orders/*.xlsx",
                "columns": {
                    "order_id": {"from": "Order", "type": "bigint"},
                    "amount": {"from": "Amount", "type": "decimal(10,2)"},
                    "day": {"from": "Day", "type": "date"},
                },
            },
            "rules": [{"not_null": ["order_id"]}, {"name": "amount is negative", "check": "amount >= 0"}],
            "destination": {"table": "orders"},
        }
    )
    files = sorted((landing / "orders").glob("*.xlsx"))
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        result = ingest.run(
            con,
            spec,
            pipeline="p",
            files=files,
            relative=lambda p: p.relative_to(landing).as_posix(),
            target=load_target.Target(TableRef("p", "orders"), TableRef("p", "orders_rejected")),
            run_id="run-1",
            log=lambda message: None,
            progress_interval=60,
        )
        loaded = con.execute("SELECT order_id, amount, day FROM p.orders ORDER BY order_id").fetchall()
        rejected = con.execute(
            "SELECT source_file, source_line, kind, reasons FROM p.orders_rejected ORDER BY source_file, source_line"
        ).fetchall()
    finally:
        con.close()
    assert result.rows_read == 5 and result.rows_accepted == 2  # the blank row counts, and is rejected
    assert [(order_id, float(amount), day) for order_id, amount, day in loaded] == [
        (1, 10.5, datetime.date(2024, 1, 1)),
        (5, 3.0, datetime.date(2024, 1, 5)),
    ]
    assert [row[:3] for row in rejected] == [
        ("orders/feb.xlsx", None, "file"),
        ("orders/jan.xlsx", 3, "rule"),
        ("orders/jan.xlsx", 4, "rule"),
        ("orders/jan.xlsx", 5, "rule"),
    ]
    reasons = {line: reasons for _, line, _, reasons in rejected}
    assert reasons[None] == ["is not an .xlsx workbook: the content is text; an .xlsx file is a zip archive"]
    assert reasons[4] == ["amount: not a valid decimal(10,2)"]
    assert reasons[5] == ["amount is negative"]


def test_a_pipeline_reads_the_sheet_its_spec_names(tmp_path):
    landing = tmp_path / "landing"
    workbook(
        landing / "q.xlsx",
        [["Note"], ["cover page"]],
        title="Cover",
        more_sheets={"Data": [["Order", "Amount"], [1, 2.5], [2, 4]]},
    )
    spec = PipelineSpec.model_validate(
        {
            "source": {
                "files": "*.xlsx",
                "excel": {"sheet": "Data"},
                "columns": {
                    "order_id": {"from": "Order", "type": "bigint"},
                    "amount": {"from": "Amount", "type": "double"},
                },
            },
            "destination": {"table": "orders"},
        }
    )
    con = duckdb.connect()
    try:
        result = ingest.run(
            con,
            spec,
            pipeline="p",
            files=[landing / "q.xlsx"],
            relative=lambda p: p.name,
            target=load_target.Target(TableRef("p", "orders"), TableRef("p", "orders_rejected")),
            run_id="run-1",
            log=lambda message: None,
            progress_interval=60,
        )
        assert con.execute("SELECT order_id, amount FROM p.orders ORDER BY 1").fetchall() == [(1, 2.5), (2, 4.0)]
    finally:
        con.close()
    assert result.rows_read == 2 and result.rows_rejected == 0


def test_openpyxl_itself_refuses_xml_entities_through_defusedxml(tmp_path):
    """Behind the intake pre-scan, the parser is the second wall: an entity bomb that reached
    it would fail fast instead of expanding."""
    import time

    from etl_platform_tests.intake import corpus

    path = tmp_path / "bomb.xlsx"
    path.write_bytes(corpus.xlsx_with({}, {"xl/worksheets/sheet1.xml": corpus.entity_bomb_sheet()})())
    started = time.monotonic()
    with pytest.raises(excel.WorkbookError, match="EntitiesForbidden"):
        excel.to_parquet(path, tmp_path / "out.parquet")
    assert time.monotonic() - started < 5


# Formulas saved without a result, and other cells whose value could load wrong.

SHEET_NS = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"


def sheet_xml(path: Path, rows: str, *, recalculate_on_open: bool = False, date1904: bool = False) -> Path:
    """A workbook whose sheet holds exactly ``rows`` (the <row> elements of its XML), saved as a
    spreadsheet program writes it: formulas with or without <v>, shared and array formulas."""
    workbook(path, [["placeholder"]])
    with zipfile.ZipFile(path) as source:
        members = {info.filename: source.read(info) for info in source.infolist()}
    members["xl/worksheets/sheet1.xml"] = (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<worksheet '
        f'xmlns="{SHEET_NS}"><sheetData>{rows}</sheetData></worksheet>'
    ).encode()
    book = (
        members["xl/workbook.xml"]
        .decode()
        .replace('fullCalcOnLoad="1"', 'fullCalcOnLoad="1"' if recalculate_on_open else "")
    )
    if date1904:
        book = re.sub(r"<workbookPr([^>]*)/>", r'<workbookPr\1 date1904="1"/>', book)
        assert 'date1904="1"' in book
    members["xl/workbook.xml"] = book.encode()
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as target:
        for name, data in members.items():
            target.writestr(name, data)
    return path


def header_row(*names: str) -> str:
    cells = "".join(f'<c r="{chr(65 + i)}1" t="inlineStr"><is><t>{n}</t></is></c>' for i, n in enumerate(names))
    return f'<row r="1">{cells}</row>'


def load_workbook_rows(
    tmp_path: Path, path: Path, columns: dict
) -> tuple[load_result.LoadResult, list[tuple], list[tuple]]:
    """Load one workbook through the real ingest step: the result, the loaded rows, the rejected rows."""
    spec = PipelineSpec.model_validate(
        {"source": {"files": "*.xlsx", "columns": columns}, "destination": {"table": "t"}}
    )
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    try:
        result = ingest.run(
            con,
            spec,
            pipeline="p",
            files=[path],
            relative=lambda p: p.name,
            target=load_target.Target(TableRef("p", "t"), TableRef("p", "t_rejected")),
            run_id="run-1",
            log=lambda message: None,
            progress_interval=60,
        )
        loaded = con.execute(f"SELECT {', '.join(columns)} FROM p.t ORDER BY 1").fetchall()
        rejected = con.execute(
            "SELECT source_line, reasons FROM p.t_rejected WHERE kind <> 'file' ORDER BY 1"
        ).fetchall()
        table_columns = [c[0] for c in con.execute("DESCRIBE p.t").fetchall()]
    finally:
        con.close()
    assert ROW_ERRORS not in table_columns
    assert result.rows_read == result.rows_accepted + result.rows_rejected
    return result, loaded, rejected


def test_a_formula_saved_without_a_result_rejects_its_row_naming_the_cell(tmp_path):
    """openpyxl itself saves formulas without results: they used to load as NULL, silently."""
    path = workbook(
        tmp_path / "orders.xlsx",
        [["qty", "price", "total"], [2, 21, 42], [3, 5, "=A3*B3"], [4, 1, 4], [5, 2, "=A5*B5"]],
    )
    result, loaded, rejected = load_workbook_rows(
        tmp_path, path, {"qty": {"type": "bigint"}, "price": {"type": "bigint"}, "total": {"type": "bigint"}}
    )
    assert loaded == [(2, 21, 42), (4, 1, 4)]
    assert rejected == [(3, ["formula without a cached value: C3"]), (5, ["formula without a cached value: C5"])]
    assert result.rows_rejected == 2 and result.rejected_by_reason == {
        "formula without a cached value: C3": 1,
        "formula without a cached value: C5": 1,
    }


def test_formulas_with_saved_results_load_them_including_empty_and_error_results(tmp_path):
    path = sheet_xml(
        tmp_path / "calc.xlsx",
        header_row("id", "total", "label", "ratio")
        + (
            '<row r="2"><c r="A2"><v>1</v></c><c r="B2"><f>3*7</f><v>21</v></c>'
            '<c r="C2" t="str"><f>IF(A2&gt;5,"big","")</f><v></v></c><c r="D2" t="e"><f>1/0</f><v>#DIV/0!</v></c></row>'
            '<row r="3"><c r="A3"><v>2</v></c><c r="B3"><f>2*2</f><v>4</v></c>'
            '<c r="C3" t="str"><f>"small"</f><v>small</v></c><c r="D3"><f>1/4</f><v>0.25</v></c></row>'
        ),
    )
    _, loaded, rejected = load_workbook_rows(
        tmp_path, path, {"id": {"type": "bigint"}, "total": {"type": "bigint"}, "label": {}, "ratio": {}}
    )
    assert loaded == [(1, 21, None, "#DIV/0!"), (2, 4, "small", "0.25")]
    assert rejected == []


def test_shared_and_array_formulas_without_results_reject_every_cell_they_cover(tmp_path):
    path = sheet_xml(
        tmp_path / "shared.xlsx",
        header_row("id", "double", "sum")
        + (
            '<row r="2"><c r="A2"><v>1</v></c><c r="B2"><f t="shared" ref="B2:B4" si="0">A2*2</f><v/></c>'
            '<c r="C2"><f t="array" ref="C2:C3">A2:A3+1</f></c></row>'
            '<row r="3"><c r="A3"><v>2</v></c><c r="B3"><f t="shared" si="0"/><v/></c></row>'
            '<row r="4"><c r="A4"><v>3</v></c><c r="B4"><f t="shared" si="0"/><v>6</v></c><c r="C4"><v>9</v></c></row>'
        ),
    )
    _, loaded, rejected = load_workbook_rows(
        tmp_path, path, {"id": {"type": "bigint"}, "double": {"type": "bigint"}, "sum": {"type": "bigint"}}
    )
    assert loaded == [(3, 6, 9)]
    assert rejected == [
        (2, ["formula without a cached value: B2, C2"]),
        (3, ["formula without a cached value: B3, C3"]),
    ]


def test_a_workbook_marked_for_recalculation_does_not_load_its_placeholder_results(tmp_path):
    """XlsxWriter saves 0 as every formula's result and marks the workbook to be recalculated when opened."""
    path = sheet_xml(
        tmp_path / "report.xlsx",
        header_row("id", "total")
        + (
            '<row r="2"><c r="A2"><v>1</v></c><c r="B2"><f>SUM(C2:Z2)</f><v>0</v></c></row>'
            '<row r="3"><c r="A3"><v>2</v></c><c r="B3"><v>7</v></c></row>'
        ),
        recalculate_on_open=True,
    )
    _, loaded, rejected = load_workbook_rows(tmp_path, path, {"id": {"type": "bigint"}, "total": {"type": "bigint"}})
    assert loaded == [(2, 7)]
    assert rejected == [
        (2, ["formula without a trustworthy cached value (the workbook is marked to be recalculated when opened): B2"])
    ]


def test_a_formula_without_a_result_in_a_column_not_loaded_rejects_nothing(tmp_path):
    path = workbook(tmp_path / "notes.xlsx", [["id", "note", "check"], [1, "a", "=LEN(B2)"], [2, "b", "=LEN(B3)"]])
    _, loaded, rejected = load_workbook_rows(tmp_path, path, {"id": {"type": "bigint"}, "note": {}})
    assert loaded == [(1, "a"), (2, "b")] and rejected == []


def test_a_last_row_of_only_unsaved_formulas_is_rejected_not_dropped_as_blank(tmp_path):
    path = workbook(tmp_path / "tail.xlsx", [["a", "b"], [1, 2], ["=A2+1", "=B2+1"]])
    result, loaded, rejected = load_workbook_rows(tmp_path, path, {"a": {"type": "bigint"}, "b": {"type": "bigint"}})
    assert loaded == [(1, 2)]
    assert rejected == [(3, ["formula without a cached value: A3, B3"])]
    assert result.rows_read == 2


def test_the_row_errors_column_is_not_a_column_of_the_file(con, tmp_path):
    path = workbook(tmp_path / "cols.xlsx", [["id", ROW_ERRORS], [1, "mine"]])
    fmt = xlsx()
    columns, _ = fmt.inspect(con, path, {})
    assert columns == ["id", f"{ROW_ERRORS}_1"] == fmt.columns(con, path)
    assert missing_columns(columns, {ROW_ERRORS: ColumnSpec()}) == [ROW_ERRORS]
    precheck_reason, _ = ingest.precheck(
        con,
        fmt,
        PipelineSpec.model_validate(
            {"source": {"files": "*.xlsx", "columns": {"id": {}, "total": {}}}, "destination": {"table": "t"}}
        ),
        path,
    )
    assert precheck_reason == f"missing mapped column(s) total; the file has id, {ROW_ERRORS}_1"


def test_a_sheet_without_formulas_is_not_read_a_second_time(con, tmp_path, monkeypatch):
    def second_read(*args, **kwargs):
        raise AssertionError("the sheet's XML was read for formulas although it has none")

    path = workbook(tmp_path / "plain.xlsx", [["id", "f"], [1, "formula-like text =A1"], [2, "<f>"]])
    with monkeypatch.context() as patch:
        patch.setattr(excel_archive, "_FormulaResults", second_read)
        assert read(con, xlsx(), path)[1] == [("1", "formula-like text =A1"), ("2", "<f>")]
    with_formula = workbook(tmp_path / "formula.xlsx", [["id", "f"], [1, "=A2"]])
    monkeypatch.setattr(excel_archive, "_FormulaResults", second_read)
    with pytest.raises(AssertionError, match="read for formulas"):
        xlsx().inspect(con, with_formula, {})


def test_the_second_read_of_a_sheet_refuses_xml_entities(tmp_path):
    """openpyxl refuses them first; the formula reader does not rely on that."""
    import time

    from etl_platform_tests.intake import corpus

    path = tmp_path / "bomb.xlsx"
    path.write_bytes(corpus.xlsx_with({}, {"xl/worksheets/sheet1.xml": corpus.entity_bomb_sheet()})())
    started = time.monotonic()
    with pytest.raises(excel.WorkbookError, match="declares a DOCTYPE or XML entities"):
        excel_archive._FormulaResults(path, "xl/worksheets/sheet1.xml", {1}, distrusted=False).in_row(2)
    assert time.monotonic() - started < 5


def test_dates_in_the_1904_date_system_load_as_the_dates_they_are(tmp_path):
    """A workbook saved with the 1904 date system (old Mac Excel) counts days from 1904-01-01:
    the same serial is four years and a day later than in the 1900 system."""
    from openpyxl.utils.datetime import CALENDAR_MAC_1904

    book = openpyxl.Workbook()
    book.epoch = CALENDAR_MAC_1904
    book.active.append(["id", "day"])
    book.active.append([1, datetime.date(2024, 1, 31)])
    book.save(tmp_path / "mac.xlsx")
    with zipfile.ZipFile(tmp_path / "mac.xlsx") as archive:
        assert b'date1904="1"' in archive.read("xl/workbook.xml")
        assert b"<v>43860</v>" in archive.read("xl/worksheets/sheet1.xml")  # 2020-01-30 in the 1900 system
    _, loaded, _ = load_workbook_rows(
        tmp_path, tmp_path / "mac.xlsx", {"id": {"type": "bigint"}, "day": {"type": "date"}}
    )
    assert loaded == [(1, datetime.date(2024, 1, 31))]


def test_large_numbers_load_as_the_file_holds_them(tmp_path):
    """Excel holds numbers as doubles and shows 15 significant digits. A value written as an
    integer loads as written; one written in floating-point form loads as the nearest double."""
    path = sheet_xml(
        tmp_path / "big.xlsx",
        header_row("id", "n")
        + (
            '<row r="2"><c r="A2"><v>1</v></c><c r="B2"><v>12345678901234567</v></c></row>'
            '<row r="3"><c r="A3"><v>2</v></c><c r="B3"><v>1.2345678901234567E+16</v></c></row>'
            '<row r="4"><c r="A4"><v>3</v></c><c r="B4"><v>1.23456789012345E+16</v></c></row>'
        ),
    )
    _, loaded, _ = load_workbook_rows(tmp_path, path, {"id": {"type": "bigint"}, "n": {}})
    assert loaded == [(1, "12345678901234567"), (2, "12345678901234568"), (3, "12345678901234500")]


# Generated: sheets whose cells are values, empty, or formulas with, without, or with an empty
# result, some columns mapped. The oracle: a row is rejected, naming exactly its mapped cells
# without a result, or loads every mapped value as the sheet holds it.
CELL_KINDS = ["value", "empty", "formula", "formula without result", "formula with empty result"]


def _cell_xml(ref: str, kind: str, number: int) -> str:
    return {
        "value": f'<c r="{ref}"><v>{number}</v></c>',
        "empty": "",
        "formula": f'<c r="{ref}"><f>{number}+0</f><v>{number}</v></c>',
        "formula without result": f'<c r="{ref}"><f>{number}+0</f><v/></c>',
        "formula with empty result": f'<c r="{ref}" t="str"><f>""</f><v></v></c>',
    }[kind]


@settings(max_examples=examples(12))
@given(
    sheet=st.lists(st.lists(st.sampled_from(CELL_KINDS), min_size=3, max_size=3), min_size=1, max_size=8),
    mapped=st.sets(st.sampled_from(["b", "c", "d"]), min_size=1),
)
def test_generated_formula_cells_reject_exactly_the_rows_they_leave_without_a_value(tmp_path, sheet, mapped):
    rows_xml, expected_loaded, expected_rejected = [], [], []
    for r, kinds in enumerate(sheet, start=2):
        cells = f'<c r="A{r}"><v>{r}</v></c>' + "".join(
            _cell_xml(f"{col}{r}", kind, r * 10 + i) for i, (col, kind) in enumerate(zip("BCD", kinds))
        )
        rows_xml.append(f'<row r="{r}">{cells}</row>')
        values = {
            name: (str(r * 10 + i) if kind in ("value", "formula") else None)
            for i, (name, kind) in enumerate(zip("bcd", kinds))
        }
        missing = [
            f"{col}{r}"
            for col, name, kind in zip("BCD", "bcd", kinds)
            if name in mapped and kind == "formula without result"
        ]
        if missing:
            expected_rejected.append((r, [f"formula without a cached value: {', '.join(missing)}"]))
        else:
            expected_loaded.append((r, *(values[name] for name in sorted(mapped))))
    folder = Path(tempfile.mkdtemp(dir=tmp_path))
    path = sheet_xml(folder / "generated.xlsx", header_row("a", "b", "c", "d") + "".join(rows_xml))
    columns = {"a": {"type": "bigint"}, **{name: {} for name in sorted(mapped)}}
    _, loaded, rejected = load_workbook_rows(folder, path, columns)
    assert (loaded, rejected) == (expected_loaded, expected_rejected)
