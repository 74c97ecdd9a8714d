"""The ``s3`` connection kind against a real S3 server on loopback, over HTTP."""

import hashlib
import os
import tempfile
import traceback
from pathlib import Path

import pydantic
import pytest

from etl_platform.connectors.landing import LocalFolder
from etl_platform.connectors.registry import build
from etl_platform.connectors.s3 import S3Connector, S3Error
from etl_platform.secrets.references import MissingSecret
from etl_platform_tests.s3_server import ACCESS_KEY_ENV, SECRET_KEY_ENV, S3Bucket

# The same tree in a local folder and under a prefix: globs must pick the same files from both.
TREE = {
    "top.csv": "t",
    "a-b.csv": "ab",  # sorts after a/ as a path, before it as a string
    "a/x.csv": "ax",
    "a/b/c.csv": "abc",
    "a/b/c/d.csv": "abcd",
    "a/b/notes.txt": "n",
    "x1.csv": "x1",
    "x22.csv": "x22",
    "sp ace/f ile.csv": "space",
    "ü/é.csv": "unicode",
    ".hidden.csv": "h",
}
PATTERNS = [
    "*.csv",
    "**/*.csv",
    "a/*.csv",
    "a/**/*.csv",
    "**/c/*",
    "*",
    "*/*/*",
    "x?.csv",
    "[!a]*.csv",
    "[at]*",
    "sp ace/*.csv",
    "ü/*",
    "a/b/c.csv",
    "**",
]


def connector(test_bucket: S3Bucket, **options) -> S3Connector:
    return build("lake", "s3", test_bucket.options(**options))


@pytest.fixture
def mirrored(s3_bucket: S3Bucket, tmp_path: Path) -> tuple[LocalFolder, S3Connector]:
    """TREE as a local folder and under the prefix 'drop/', with keys around it that no glob may reach."""
    root = tmp_path / "local"
    for name, body in TREE.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(body)
    s3_bucket.put_many(
        {f"drop/{name}": body for name, body in TREE.items()}
        | {"drop/a/": "", "drop/empty-folder/": "", "drop-other/top.csv": "no", "other/a/x.csv": "no", "top.csv": "no"}
    )
    return LocalFolder(root), connector(s3_bucket, prefix="/drop")


@pytest.mark.parametrize("pattern", PATTERNS)
def test_globs_pick_the_same_files_as_on_a_local_folder(mirrored, pattern):
    local, lake = mirrored
    expected = [local.relative(path) for path in local.list(pattern)]
    assert [obj.name for obj in lake.list_objects(pattern)] == expected
    with lake.fetch(pattern) as fetched:
        assert [fetched.relative(path) for path in fetched.files] == expected
        assert [path.read_text() for path in fetched.files] == [TREE[name] for name in expected]


def test_star_stays_in_one_folder_and_double_star_spans_any_depth(mirrored):
    _, lake = mirrored
    assert [obj.name for obj in lake.list_objects("*.csv")] == [
        ".hidden.csv",
        "a-b.csv",
        "top.csv",
        "x1.csv",
        "x22.csv",
    ]
    # Name order is path order, folder by folder, as on a local folder.
    assert [obj.name for obj in lake.list_objects("a/**/*.csv")] == ["a/b/c/d.csv", "a/b/c.csv", "a/x.csv"]
    assert [obj.key for obj in lake.list_objects("ü/*.csv")] == ["drop/ü/é.csv"]


@pytest.mark.parametrize("pattern", ["/etc/*.csv", "../drop-other/*.csv", "a/../../x.csv", "", "a**/*.csv"])
def test_patterns_that_leave_the_prefix_are_refused(s3_bucket, pattern):
    with pytest.raises(ValueError, match="file pattern"):
        connector(s3_bucket).list_objects(pattern)


def test_fetch_downloads_exact_bytes_then_removes_its_folder(s3_bucket, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    small = os.urandom(300_000)
    large = os.urandom(9 * 1024 * 1024)  # over the 8 MiB threshold: downloaded in ranged parts
    s3_bucket.put("in/2024/01/orders.csv.gz", small)
    s3_bucket.put("in/2024/02/orders.csv.gz", large)
    lake = connector(s3_bucket, prefix="in")
    with lake.fetch("2024/*/orders.csv.gz") as fetched:
        assert fetched.location == f"s3://{s3_bucket.name}/in/"
        assert [fetched.relative(path) for path in fetched.files] == ["2024/01/orders.csv.gz", "2024/02/orders.csv.gz"]
        # Same file name under two folders: both kept, extension intact.
        assert [path.name for path in fetched.files] == ["orders.csv.gz", "orders.csv.gz"]
        assert [hashlib.sha256(path.read_bytes()).digest() for path in fetched.files] == [
            hashlib.sha256(small).digest(),
            hashlib.sha256(large).digest(),
        ]
        folder = fetched.files[0].parent.parent
        assert folder.is_relative_to(tmp_path)
    assert not folder.exists()
    with pytest.raises(RuntimeError), lake.fetch("**/*.gz"):
        raise RuntimeError("the load failed")
    assert list(tmp_path.iterdir()) == []


def test_fetch_with_no_match_yields_no_files(s3_bucket):
    with connector(s3_bucket).fetch("*.parquet") as fetched:
        assert fetched.files == []


def test_listing_goes_past_one_page(s3_bucket):
    s3_bucket.put_many({f"many/part-{n:05d}.csv": f"{n}\n" for n in range(1_500)} | {"many/_SUCCESS": ""})
    objects = connector(s3_bucket, prefix="many").list_objects("*.csv")
    assert [obj.name for obj in objects] == [f"part-{n:05d}.csv" for n in range(1_500)]
    first = objects[0]
    assert first.key == "many/part-00000.csv"
    assert first.size == 2
    assert first.etag == hashlib.md5(b"0\n").hexdigest()
    assert first.last_modified.tzinfo is not None


def test_an_object_replaced_during_the_download_fails_the_fetch(s3_bucket, monkeypatch):
    s3_bucket.put("big.bin", os.urandom(9 * 1024 * 1024))
    lake = connector(s3_bucket)
    listed = lake.list_objects("big.bin")

    def list_then_replace(pattern):
        s3_bucket.put("big.bin", os.urandom(9 * 1024 * 1024))
        return listed

    monkeypatch.setattr(lake, "list_objects", list_then_replace)
    with pytest.raises(S3Error, match="replaced while it was being downloaded"), lake.fetch("big.bin"):
        pass


def test_missing_bucket_is_named_in_the_error(s3_bucket):
    with pytest.raises(S3Error) as raised:
        connector(s3_bucket, bucket="no-such-bucket", prefix="exports").list_objects("*.csv")
    assert (
        str(raised.value)
        == "s3://no-such-bucket/exports/: listing '*.csv' failed: the bucket does not exist (NoSuchBucket)"
    )


def test_bad_credentials_give_a_clear_error_without_the_secret(s3_bucket, monkeypatch):
    s3_bucket.put("in/a.csv", "x")
    lake = connector(s3_bucket, prefix="in")
    with s3_bucket.server.requiring_credentials(s3_bucket.name) as (key_id, secret):
        monkeypatch.setenv(ACCESS_KEY_ENV, key_id)
        monkeypatch.setenv(SECRET_KEY_ENV, secret)
        assert [obj.name for obj in lake.list_objects("*.csv")] == ["a.csv"]

        wrong_secret = "wrong-" + secret[6:]
        monkeypatch.setenv(SECRET_KEY_ENV, wrong_secret)
        with pytest.raises(S3Error, match="the secret access key does not belong to the access key id") as raised:
            lake.list_objects("*.csv")
        shown = "".join(traceback.format_exception(raised.value))
        assert s3_bucket.name in shown and "in/" in shown
        assert wrong_secret not in shown and secret not in shown

        monkeypatch.setenv(ACCESS_KEY_ENV, "AKIAUNKNOWNKEY000000")
        with pytest.raises(S3Error, match="access key id is not known"):
            lake.list_objects("*.csv")

        monkeypatch.setenv(ACCESS_KEY_ENV, key_id)
        monkeypatch.setenv(SECRET_KEY_ENV, secret)
        with pytest.raises(S3Error, match="access denied"):
            connector(s3_bucket, bucket="someone-elses-bucket").list_objects("*.csv")


def test_credentials_are_read_only_when_a_client_is_made(s3_bucket, monkeypatch):
    monkeypatch.delenv(SECRET_KEY_ENV)
    lake = connector(s3_bucket)  # building needs no secret
    with pytest.raises(MissingSecret, match=SECRET_KEY_ENV):
        lake.list_objects("*.csv")


def test_without_keys_the_default_credential_chain_is_used(s3_bucket, monkeypatch, tmp_path):
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_bucket.server.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_bucket.server.secret_access_key)
    s3_bucket.put("a.csv", "x")
    lake = connector(s3_bucket, access_key_id=None, secret_access_key=None)
    assert [obj.name for obj in lake.list_objects("*.csv")] == ["a.csv"]
    assert "default AWS credentials" in lake.describe()


def test_describe_and_options_show_where_credentials_come_from_never_their_values(s3_bucket):
    lake = connector(s3_bucket, prefix="shop/daily/")
    assert lake.describe() == (
        f"s3://{s3_bucket.name}/shop/daily/ (endpoint {s3_bucket.server.endpoint_url}, access key "
        f"${{{ACCESS_KEY_ENV}}})"
    )
    for shown in (lake.describe(), lake.options_json()):
        assert s3_bucket.server.access_key_id not in shown
        assert s3_bucket.server.secret_access_key not in shown
    aws = build("lake", "s3", {"bucket": "acme", "region": "eu-west-1"})
    assert aws.describe() == "s3://acme/ (AWS region eu-west-1, default AWS credentials)"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"bucket": "s3://acme/exports"}, "only the bucket name"),
        ({"bucket": "acme", "access_key_id": {"env": "KEY"}}, "both access_key_id and secret_access_key"),
        ({"bucket": "acme", "prefix": "a/../b"}, "may not contain '..'"),
        ({"bucket": "acme", "endpoint_url": "minio:9000"}, "endpoint_url"),
        ({"bucket": "acme", "secret_access_key": "plain-text"}, "secret_access_key"),
    ],
)
def test_bad_options_are_refused(options, message):
    with pytest.raises(pydantic.ValidationError, match=message):
        build("lake", "s3", options)
