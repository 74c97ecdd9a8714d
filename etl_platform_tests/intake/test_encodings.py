"""Detection and transcoding at chunk boundaries, where streaming code usually breaks."""

import pytest

from etl_platform.intake import encodings
from etl_platform.intake.encodings import TextScan
from etl_platform.intake.sniff import Content


def scan(data: bytes, chunk: int) -> TextScan:
    found = TextScan()
    for i in range(0, len(data), chunk):
        found.feed(data[i:i + chunk])
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
        encodings.check_declared("klingon")


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
    data[entry + 24:entry + 28] = (1024).to_bytes(4, "little")
    src = tmp_path / "lying.zip"
    src.write_bytes(bytes(data))
    started = time.monotonic()
    with pytest.raises(limits.Unreadable, match="is not a readable zip file .*Bad CRC-32 for file 'data.csv'"):
        limits.decompress(src, "zip", tmp_path / "out", 1 << 20, "limits.max_decompressed_bytes")
    assert time.monotonic() - started < 5
    assert not (tmp_path / "out").exists()


def test_a_pipeline_declaring_an_unknown_encoding_fails_at_load_naming_the_field():
    import pydantic

    from etl_platform.spec import PipelineSpec

    with pytest.raises(pydantic.ValidationError, match=r"source\.csv\.encoding\n.*unknown encoding 'klingon'"):
        PipelineSpec.model_validate({"source": {"files": "*.csv", "columns": {"a": {}}, "csv": {"encoding": "klingon"}},
                                     "destination": {"table": "t"}})
