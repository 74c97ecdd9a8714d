"""Detection and transcoding at chunk boundaries, where streaming code usually breaks."""

from pathlib import Path

import duckdb
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from etl_platform.connectors.landing import LocalFolder
from etl_platform.destinations.warehouse.tables import TableRef
from etl_platform.intake import encodings
from etl_platform.intake.encodings import TextScan
from etl_platform.intake.sniff import Content
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.sources import check_declared
from etl_platform.steps import ingest, load_target
from etl_platform_tests.conftest import examples


def scan(data: bytes, chunk: int) -> TextScan:
    found = TextScan()
    for i in range(0, len(data), chunk):
        found.feed(data[i : i + chunk])
    found.finish()
    return found


@pytest.mark.parametrize("chunk", [1, 2, 3, 7, 1 << 20])
def test_utf8_split_across_chunks_is_still_utf8_and_latin1_is_not(chunk):
    utf8 = "id,name\n1,café ✓\n".encode()
    assert scan(utf8, chunk).encoding("auto", Content(utf8[:64])) == "utf-8"
    latin = "id,name\n1,café\n".encode("latin-1")
    assert scan(latin, chunk).encoding("auto", Content(latin[:64])) == "cp1252"
    assert scan(b"a\x81b\xe9\n", chunk).encoding("auto", Content(b"a\x81b\xe9\n")) == "latin-1"
    truncated = "é".encode()[:1]
    assert not scan(b"abc" + truncated, chunk).utf8_valid


def test_transcoding_joins_crlf_split_across_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(encodings, "CHUNK", 4)
    src, dest = tmp_path / "in.csv", tmp_path / "out.csv"
    src.write_bytes("id\r\n1\r\né\n2\r\n".encode("cp1252"))
    encodings.transcode(src, dest, "cp1252")
    assert dest.read_bytes() == "id\n1\né\n2\n".encode()


def test_a_declared_encoding_that_does_not_fit_names_the_line(tmp_path):
    src = tmp_path / "in.csv"
    src.write_bytes(b"id\n1\n\xff\xfe\xfd\n")
    with pytest.raises(encodings.EncodingError, match=r"not valid ascii: byte 5 \(line 3\)"):
        encodings.transcode(src, tmp_path / "out.csv", "ascii")


def test_unknown_encodings_are_refused_at_load():
    with pytest.raises(ValueError, match="unknown encoding 'klingon'"):
        check_declared("klingon")


def test_a_zip_member_that_lies_about_its_size_is_stopped_at_the_limit(tmp_path):
    """The declared size passes the check; the reader stops at the declared size and the
    content's checksum then fails, so the file is rejected without expanding."""
    import io
    import time
    import zipfile

    from etl_platform.intake import limits

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("data.csv", b"0" * (8 << 20))
    data = bytearray(buffer.getvalue())
    # Rewrite the central directory's uncompressed size (offset 24 in the entry) to claim 1 KB.
    entry = data.rindex(b"PK\x01\x02")
    data[entry + 24 : entry + 28] = (1024).to_bytes(4, "little")
    src = tmp_path / "lying.zip"
    src.write_bytes(bytes(data))
    started = time.monotonic()
    with pytest.raises(limits.Unreadable, match="is not a readable zip file .*Bad CRC-32 for file 'data.csv'"):
        limits.decompress(src, "zip", tmp_path / "out", 1 << 20, "limits.max_decompressed_bytes")
    assert time.monotonic() - started < 5
    assert not (tmp_path / "out").exists()


def test_a_pipeline_declaring_an_unknown_encoding_fails_at_load_naming_the_field():
    import pydantic

    from etl_platform.spec.pipeline import PipelineSpec

    with pytest.raises(pydantic.ValidationError, match=r"source\.csv\.encoding\n.*unknown encoding 'klingon'"):
        PipelineSpec.model_validate(
            {
                "source": {"files": "*.csv", "columns": {"a": {}}, "csv": {"encoding": "klingon"}},
                "destination": {"table": "t"},
            }
        )


# Garbled text is never loaded: what is detectable is rejected naming the byte, or decoded right.

# Words as people write them, per language; rows are made of them.
WORDS = {
    "french": (
        "été café crème brûlée garçon français élève où déjà très château forêt hôtel naïve Noël Zoë cœur"
    ).split(),
    "german": "Müller Straße Größe Jürgen Köln über schön fünf Übung Äpfel weiß Grüße Mädchen Düsseldorf".split(),
    "spanish": "año niño España señor mañana acción corazón está más próximo pingüino Peña Muñoz".split(),
    "nordic": "København Ærø blåbær smørrebrød Åsa Øystein Göteborg Malmö fjäll Bjørn Tromsø".split(),
    "russian": "Иван Петров Москва Пётр Сидоров Анна Каренина Новосибирск улица дом квартира заказ счёт оплата".split(),
    "greek": "Αθήνα Θεσσαλονίκη Γιώργος Παπαδόπουλος οδός παραγγελία λογαριασμός Ελλάδα Πάτρα".split(),
    "polish": "Łukasz Wiśniewski Łódź Kraków Gdańsk zażółć gęślą jaźń Wrocław Szczecin źródło".split(),
    "czech": "Jiří Novák Plzeň Petra Dvořáková České Budějovice příliš žluťoučký kůň úpěl ďábelské ódy".split(),
    "japanese": "山田太郎 東京 鈴木花子 大阪 佐藤一郎 名古屋 注文 請求書 株式会社 テスト データ".split(),
    "chinese": "北京 上海 张伟 王芳 订单 发票 有限公司 广州 深圳".split(),
    "korean": "서울 부산 김민수 이영희 주문 송장 주식회사 대전".split(),
}
WESTERN = ("french", "german", "spanish", "nordic")


def rows_of(language: str, picks: list[int]) -> list[tuple[int, str]]:
    words = WORDS[language]
    return [(i, f"{words[p % len(words)]} {words[(p * 7 + 3) % len(words)]}") for i, p in enumerate(picks)]


def csv_text(rows: list[tuple[int, str]]) -> str:
    return "id,name\n" + "".join(f"{i},{name}\n" for i, name in rows)


def load_bytes(tmp_path: Path, data: bytes, encoding: str = "auto") -> tuple[list[tuple], str | None]:
    """Load one CSV file with these bytes; returns the rows loaded and why the file was rejected."""
    landing = tmp_path / f"landing-{len(list(tmp_path.iterdir()))}"
    landing.mkdir()
    (landing / "data.csv").write_bytes(data)
    spec = PipelineSpec.model_validate(
        {
            "source": {
                "files": "*.csv",
                "columns": {"id": {"type": "bigint"}, "name": {}},
                "csv": {"encoding": encoding},
            },
            "destination": {"table": "t"},
            # A rejected file leaves an empty table here, so the test can look at it.
            "sync": {"allow_empty": True},
        }
    )
    folder = LocalFolder(landing)
    with duckdb.connect() as con:
        result = ingest.run(
            con,
            spec,
            pipeline="p",
            files=folder.list("*.csv"),
            relative=folder.relative,
            target=load_target.Target(TableRef("p", "t"), TableRef("p", "t_rejected")),
            run_id="run-1",
            log=lambda m: None,
            progress_interval=60,
        )
        loaded = con.execute("SELECT id, name FROM p.t ORDER BY id").fetchall()
    rejected = [f.rejected_whole for f in result.files_rejected]
    assert result.rows_rejected == 0, con
    return loaded, rejected[0] if rejected else None


def test_one_latin1_byte_in_a_utf8_file_rejects_it_naming_the_byte_instead_of_garbling_all(tmp_path):
    good = "id,name\n" + "".join(f"{i},Zoë Dupré ✓\n" for i in range(1, 1000))
    data = good.encode() + "1000,Zoë\n".encode("latin-1") + "1001,Zoë\n".encode()
    loaded, why = load_bytes(tmp_path, data)
    assert loaded == []  # it used to load every row as 'ZoÃ« DuprÃ© âœ“'
    at = len(good.encode()) + len("1000,Zo")
    assert why == (
        f"mixes encodings: it is UTF-8, except that byte {at:,} (line 1,001) is 0xeb, which is not; "
        "save all of it as UTF-8, or declare source.csv.encoding if all of it is in one other encoding"
    )


def test_utf8_text_in_a_windows_1252_file_rejects_it_naming_the_byte(tmp_path):
    legacy = csv_text(rows_of("french", list(range(300)))).encode("cp1252")
    data = legacy + "300,Zoë\n".encode()
    loaded, why = load_bytes(tmp_path, data)
    assert loaded == []
    at = len(legacy) + len("300,Zo")
    assert why.startswith(
        f"mixes encodings: it is Windows-1252, but byte {at:,} (line 302) starts UTF-8 text ('ë' written as UTF-8)"
    )


@pytest.mark.parametrize(
    ("language", "codec", "named"),
    [
        ("russian", "cp1251", "cp1251"),
        ("greek", "cp1253", "cp1253"),
        ("polish", "cp1250", "cp1250"),
        ("japanese", "shift_jis", "cp932"),
        ("chinese", "gbk", "gb18030"),
        ("korean", "euc_kr", "cp949"),
    ],
)
def test_text_in_another_encoding_is_rejected_naming_what_it_looks_like(tmp_path, language, codec, named):
    data = csv_text(rows_of(language, list(range(40)))).encode(codec)
    loaded, why = load_bytes(tmp_path, data)
    assert loaded == []
    assert why.startswith("is not UTF-8: byte 10 (line 2) is 0x"), why
    assert f"as Windows-1252 it reads as garbled text; it looks like {named}" in why
    assert why.endswith(f"declare source.csv.encoding: {named}")
    # Declared as the message says, it loads as written.
    assert load_bytes(tmp_path, data, named) == (rows_of(language, list(range(40))), None)


def test_cyrillic_in_capitals_is_not_taken_for_japanese(tmp_path):
    rows = [(i, name.upper()) for i, name in rows_of("russian", list(range(20)))]
    _, why = load_bytes(tmp_path, csv_text(rows).encode("cp1251"))
    assert "it looks like cp1251" in why


def test_a_byte_windows_1252_leaves_undefined_rejects_the_file(tmp_path):
    loaded, why = load_bytes(tmp_path, b"id,name\n1,caf\xe9\n2,ab\x81c\n")
    assert loaded == []
    assert why == (
        "is neither UTF-8 nor Windows-1252: byte 19 (line 3) is 0x81, which Windows-1252 leaves undefined "
        "and Latin-1 reads as a control character; declare its encoding in source.csv.encoding"
    )


@pytest.mark.parametrize(
    ("codec", "language"),
    [
        ("cp1251", "russian"),
        ("shift_jis", "japanese"),
        ("cp1250", "czech"),
        ("cp1250", "polish"),
        ("cp1253", "greek"),
        ("utf-16", "russian"),
        ("utf-16-le", "japanese"),
        ("utf-16-be", "greek"),
        ("gb18030", "chinese"),
        ("euc_kr", "korean"),
        ("cp1252", "french"),
        ("latin-1", "german"),
        ("utf-8", "japanese"),
    ],
)
def test_a_declared_encoding_decodes_real_text(tmp_path, codec, language):
    rows = rows_of(language, list(range(25)))
    assert load_bytes(tmp_path, csv_text(rows).encode(codec), codec) == (rows, None)


def test_declared_utf16_without_a_byte_order_mark_is_read_in_its_own_byte_order(tmp_path):
    rows = [(1, "plain ascii"), (2, "more text")]
    assert load_bytes(tmp_path, csv_text(rows).encode("utf-16-be"), "utf-16") == (rows, None)


@pytest.mark.parametrize(
    ("data", "encoding", "reason"),
    [
        (
            b"id,name\n1,\x98x\n",
            "cp1251",
            "is not valid cp1251 (source.csv.encoding is 'cp1251'): byte 10 (line 2) does not decode",
        ),
        (
            "id,name\n1,5 € net\n".encode("cp1252"),
            "latin-1",
            "is not iso8859-1 (source.csv.encoding is 'iso8859-1'): byte 12 (line 2) decodes to the control character "
            "U+0080, "
            "so the file is in another encoding",
        ),
        (
            "id,name\n1,a\x85b\n".encode("utf-16"),
            "utf-16",
            "is not utf-16 (source.csv.encoding is 'utf-16'): byte 24 (line 2) decodes to the control character "
            "U+0085, "
            "so the file is in another encoding",
        ),
        (
            "id,name\n1,café\n".encode("latin-1"),
            "utf-8",
            "is not valid UTF-8 (source.csv.encoding is 'utf-8'): byte 13 (line 2) does not decode; declare its "
            "encoding, e.g. 'cp1252'",
        ),
    ],
)
def test_a_declared_encoding_that_does_not_fit_is_rejected_naming_the_byte(tmp_path, data, encoding, reason):
    assert load_bytes(tmp_path, data, encoding) == ([], reason)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1 << 20])
def test_the_first_byte_that_is_not_utf8_is_found_at_any_chunk_boundary(chunk):
    data = "id,name\n1,Zoë ✓\n".encode() + b"2,Zo\xeb\n" + "3,€\n".encode()
    assert scan(data, chunk).first_not_utf8 == data.index(b"\xeb")
    truncated = "ab✓".encode()[:-1]
    assert scan(truncated, chunk).first_not_utf8 == 2


@pytest.mark.parametrize("codec", ["utf-16", "iso8859-1", "cp932"])
def test_a_control_character_is_placed_exactly_across_chunk_boundaries(tmp_path, monkeypatch, codec):
    monkeypatch.setattr(encodings, "CHUNK", 3)
    text = "id,name\r\n1,ab\r\n2,x\x85y\r\n"
    data = text.encode(codec) if codec != "cp932" else "id,name\r\n1,日本\r\n".encode(codec) + b"2,x\x80y\r\n"
    src = tmp_path / "in.csv"
    src.write_bytes(data)
    at = data.index(b"\x85\x00") if codec == "utf-16" else data.index(b"\x85" if codec == "iso8859-1" else b"\x80")
    with pytest.raises(
        encodings.EncodingError, match=rf"byte {at} \(line 3\) decodes to the control character U\+008[05]"
    ):
        encodings.transcode(src, tmp_path / "out.csv", codec)


# Generated: rows of real words in several languages and encodings, declared or detected. The
# oracle knows what was written: it loads exactly that, or (only where Windows-1252 would garble
# it and nobody declared the encoding) the file is rejected. Never anything else.
UNDECLARED = [  # (language, codec): what intake must do when nobody declares the encoding
    *[(language, "utf-8") for language in WORDS],
    *[(language, "utf-16") for language in WORDS],
    *[(language, "cp1252") for language in WESTERN],
    ("russian", "cp1251"),
    ("greek", "cp1253"),
    ("polish", "cp1250"),
    ("japanese", "shift_jis"),
    ("chinese", "gbk"),
    ("korean", "euc_kr"),
]
DECLARED = [
    ("russian", "cp1251"),
    ("greek", "cp1253"),
    ("polish", "cp1250"),
    ("czech", "cp1250"),
    ("japanese", "shift_jis"),
    ("chinese", "gbk"),
    ("korean", "euc_kr"),
    ("french", "cp1252"),
    ("german", "latin-1"),
    ("russian", "utf-16-le"),
]


@settings(max_examples=examples(40))
@given(
    case=st.sampled_from(UNDECLARED + [(lang, codec, "declared") for lang, codec in DECLARED]),
    picks=st.lists(st.integers(0, 1000), min_size=1, max_size=60),
    upper=st.booleans(),
)
def test_generated_text_loads_exactly_as_written_or_is_rejected_never_garbled(tmp_path, case, picks, upper):
    language, codec, *declared = case
    rows = [(i, name.upper() if upper else name) for i, name in rows_of(language, picks)]
    loaded, why = load_bytes(tmp_path, csv_text(rows).encode(codec), codec if declared else "auto")
    if declared or codec.startswith("utf") or language in WESTERN:
        assert (loaded, why) == (rows, None)
    else:
        assert loaded == [] and why.startswith(("is not UTF-8", "is neither UTF-8")), why


@settings(max_examples=examples(20))
@given(
    language=st.sampled_from(WESTERN),
    legacy=st.sampled_from(["cp1252", "latin-1"]),
    lines=st.lists(st.booleans(), min_size=2, max_size=40).filter(lambda ls: any(ls) and not all(ls)),
)
def test_generated_mixed_encodings_are_rejected(tmp_path, language, legacy, lines):
    """Some lines UTF-8, some in a legacy encoding (Western words, so both can hold them)."""
    words = [w for w in WORDS[language] if w.encode(legacy, "ignore").decode(legacy) == w]
    rows = [(i, words[i % len(words)]) for i in range(len(lines))]
    data = b"id,name\n" + b"".join(
        f"{i},{name}\n".encode("utf-8" if utf8 else legacy) for (i, name), utf8 in zip(rows, lines)
    )
    loaded, why = load_bytes(tmp_path, data)
    assert loaded == [] and "mixes encodings" in why, why


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 7, 1 << 20])
def test_utf8_text_in_a_windows_1252_file_is_found_at_any_chunk_boundary(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(encodings, "CHUNK", chunk)
    src = tmp_path / "in.csv"
    mixed = "id,name\n1,café\n2,crème\n".encode("cp1252") + "3,Zoë Noël\n".encode() + b"4,x\n"
    src.write_bytes(mixed)
    with pytest.raises(
        encodings.EncodingError, match=r"but byte 27 \(line 4\) starts UTF-8 text \('ë' written as UTF-8\)"
    ):
        encodings.transcode(src, tmp_path / "out.csv", "cp1252", refuse_utf8_text=True)
    # A Windows-1252 line whose first bytes happen to be valid UTF-8 ("Ã©" as two letters) is not UTF-8 text.
    src.write_bytes("id,name\n1,Ã© café\n".encode("cp1252"))
    encodings.transcode(src, tmp_path / "out.csv", "cp1252", refuse_utf8_text=True)
    assert (tmp_path / "out.csv").read_text() == "id,name\n1,Ã© café\n"
