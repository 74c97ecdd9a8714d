"""The ``xlsx`` file format: a worksheet streamed to text columns that DuckDB scans."""

import datetime
import gc
import re
import zipfile
from pathlib import Path

import duckdb
import openpyxl
import pyarrow.parquet as pq
import pytest
from openpyxl.styles import Font

from etl_platform.connectors import excel
from etl_platform.connectors.files import XlsxFormat, file_format
from etl_platform.spec import CsvOptions, ExcelOptions, PipelineSpec
from etl_platform.steps import ingest
from etl_platform.steps.load import TableRef


@pytest.fixture
def con():
    connection = duckdb.connect()
    yield connection
    connection.close()


def workbook(path: Path, rows: list[list], title: str = "Sheet1", more_sheets: dict[str, list[list]] | None = None) -> Path:
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
    columns, _ = fmt.inspect(con, path, {})
    relation = con.execute(f"SELECT * FROM {fmt.scan(path, {})}")
    assert {column[1] for column in relation.description} <= {"STRING", "VARCHAR"}
    return columns, relation.fetchall()


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
            [1, 3.0, datetime.datetime(2024, 1, 31, 10, 30), datetime.date(2024, 2, 1), True, "first", datetime.time(8, 15)],
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
        f'SELECT amount::DECIMAL(10,2), "ordered at"::TIMESTAMP, day::DATE, paid::BOOLEAN FROM {scan} WHERE id = \'1\''
    ).fetchone() == (pytest.approx(3), datetime.datetime(2024, 1, 31, 10, 30), datetime.date(2024, 2, 1), True)


def test_formulas_give_the_result_saved_with_the_workbook(con, tmp_path):
    path = workbook(tmp_path / "f.xlsx", [["qty", "price", "total"], [2, 21, "=A2*B2"], [3, 5, "=A3*B3"]])
    # openpyxl saves formulas without results; save one the way a spreadsheet program would.
    save_formula_results(path, {"A2*B2": "42"})
    _, rows = read(con, xlsx(), path)
    assert rows == [("2", "21", "42"), ("3", "5", None)]


def save_formula_results(path: Path, results: dict[str, str]) -> None:
    with zipfile.ZipFile(path) as source:
        members = {info.filename: source.read(info) for info in source.infolist()}
    sheet = members["xl/worksheets/sheet1.xml"].decode()
    for formula, value in results.items():
        sheet, count = re.subn(rf"<f>{re.escape(formula)}</f>\s*<v\s*/>", f"<f>{formula}</f><v>{value}</v>", sheet)
        assert count == 1, sheet
    members["xl/worksheets/sheet1.xml"] = sheet.encode()
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
    for read_it in (lambda fmt: fmt.columns(con, path), lambda fmt: fmt.inspect(con, path, {}), lambda fmt: fmt.scan(path, {})):
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
            con, spec, pipeline="p", files=files, relative=lambda p: p.relative_to(landing).as_posix(),
            target=ingest.Target(TableRef("p", "orders"), TableRef("p", "orders_rejected")),
            run_id="run-1", log=lambda message: None, progress_interval=60,
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
    workbook(landing / "q.xlsx", [["Note"], ["cover page"]], title="Cover", more_sheets={"Data": [["Order", "Amount"], [1, 2.5], [2, 4]]})
    spec = PipelineSpec.model_validate({
        "source": {"files": "*.xlsx", "excel": {"sheet": "Data"},
                   "columns": {"order_id": {"from": "Order", "type": "bigint"}, "amount": {"from": "Amount", "type": "double"}}},
        "destination": {"table": "orders"},
    })
    con = duckdb.connect()
    try:
        result = ingest.run(
            con, spec, pipeline="p", files=[landing / "q.xlsx"], relative=lambda p: p.name,
            target=ingest.Target(TableRef("p", "orders"), TableRef("p", "orders_rejected")),
            run_id="run-1", log=lambda message: None, progress_interval=60,
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
