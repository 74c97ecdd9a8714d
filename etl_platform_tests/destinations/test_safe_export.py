"""Files written for people never carry a live spreadsheet formula."""

import csv

import openpyxl
import pytest

from etl_platform.cli.main import main
from etl_platform.destinations.safe_export import FORMULA_STARTS, neutralise, neutralised_sql, write_csv, write_xlsx
from etl_platform_tests.quality.conftest import marketing_attributes, marketing_defs

RISKY = ["=1+1", "+A1", "-2+3", "@SUM(A1:A2)", "\tx", "\rx"]


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_formula_cells_are_written_as_text(tmp_path, suffix):
    path = tmp_path / f"out{suffix}"
    rows = [[value, "plain", 7, -7] for value in RISKY]
    (write_csv if suffix == ".csv" else write_xlsx)(path, ["value", "text", "number", "negative"], rows)
    if suffix == ".csv":
        with path.open(newline="") as f:
            read = list(csv.reader(f))[1:]
        assert [r[0] for r in read] == ["'" + v for v in RISKY]
        assert [r[1:] for r in read] == [["plain", "7", "-7"]] * len(RISKY)
    else:
        sheet = openpyxl.load_workbook(path).active
        cells = list(sheet.iter_rows(min_row=2))
        # XML reads a bare CR back as LF; what matters is the leading quote.
        assert [c[0].value for c in cells] == ["'" + v.replace("\r", "\n") for v in RISKY]
        assert all(c[0].data_type == "s" for c in cells)  # text, not a formula
        assert [(c[1].value, c[2].value, c[3].value) for c in cells] == [("plain", 7, -7)] * len(
            RISKY
        )  # numbers stay numbers


def test_the_sql_form_matches_the_python_form():
    import duckdb

    con = duckdb.connect()
    for value in [*RISKY, "ok", "", "'=already"]:
        assert con.execute(f"SELECT {neutralised_sql('v')} FROM (SELECT ? AS v)", [value]).fetchone()[0] == neutralise(
            value
        )
    assert FORMULA_STARTS == ("=", "+", "-", "@", "\t", "\r")


def test_the_rejected_rows_export_neutralises_a_planted_formula(demo_landing, etl_home, instance, tmp_path):
    header = (demo_landing / "campaigns" / "campaign_export_001.csv").read_text().splitlines()[0]
    fields = len(header.split(","))
    planted = "=HYPERLINK(1)" + ",x" * fields  # one field too many: rejected with the line as read
    (demo_landing / "campaigns" / "campaign_export_004.csv").write_text(f"{header}\n{planted}\n")
    job = marketing_defs(marketing_attributes(expectations=[])).resolve_job_def("marketing_campaigns_job")
    assert job.execute_in_process(instance=instance, raise_on_error=False).success
    for suffix in (".csv", ".xlsx"):
        out = tmp_path / f"rejected{suffix}"
        assert (
            main(
                [
                    "rejected",
                    "export",
                    "marketing_campaigns",
                    "--out",
                    str(out),
                    "--where",
                    "source_file LIKE '%004.csv'",
                ]
            )
            == 0
        )
        if suffix == ".csv":
            with out.open(newline="") as f:
                rows = list(csv.DictReader(f))
        else:
            sheet = openpyxl.load_workbook(out).active
            values = [[c.value for c in row] for row in sheet.iter_rows()]
            rows = [dict(zip(values[0], row)) for row in values[1:]]
        assert len(rows) == 1
        assert rows[0]["record"] == "'" + planted
        assert rows[0]["source_file"] == "campaigns/campaign_export_004.csv" and int(rows[0]["source_line"]) == 2
