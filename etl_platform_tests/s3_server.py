"""An S3-compatible server on loopback for tests, and a fresh bucket per test.

Its fixtures ``s3_server`` and ``s3_bucket`` are registered in the root conftest, for every test.
The server is moto's, started once per test session on 127.0.0.1 at a free port; it
speaks the S3 HTTP API, so the code under test runs boto3 over real HTTP. Credentials
are not checked unless a test asks for it with ``S3Server.requiring_credentials()``.
"""

import contextlib
import functools
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

ACCESS_KEY_ENV = "ETL_TEST_S3_ACCESS_KEY_ID"
SECRET_KEY_ENV = "ETL_TEST_S3_SECRET_ACCESS_KEY"


@functools.cache
def _session():
    """One boto3 session for the tests' own clients: making one costs ~0.1 s."""
    import boto3

    return boto3.session.Session()


@dataclass(frozen=True)
class S3Server:
    endpoint_url: str
    region: str = "us-east-1"
    # Any keys do while the server does not check credentials.
    access_key_id: str = "test-access-key-id"
    secret_access_key: str = "test-secret-access-key"

    def client(self, access_key_id: str | None = None, secret_access_key: str | None = None):
        from botocore.config import Config

        return _session().client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=access_key_id or self.access_key_id,
            aws_secret_access_key=secret_access_key or self.secret_access_key,
            config=Config(s3={"addressing_style": "path"}, max_pool_connections=32),
        )

    @contextlib.contextmanager
    def requiring_credentials(self, bucket: str) -> Iterator[tuple[str, str]]:
        """Check every request's signature until the block ends; yields a key pair that may use ``bucket``.

        The check is server-wide, so requests with other keys (a fixture's cleanup, say)
        fail inside the block.
        """
        iam = self._admin("iam")
        user = f"reader-{uuid.uuid4().hex[:8]}"
        iam.create_user(UserName=user)
        iam.put_user_policy(
            UserName=user,
            PolicyName="read-bucket",
            PolicyDocument=(
                '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "s3:*", '
                f'"Resource": ["arn:aws:s3:::{bucket}", "arn:aws:s3:::{bucket}/*"]}}]}}'
            ),
        )
        key = iam.create_access_key(UserName=user)["AccessKey"]
        self._set_unchecked_requests("0")
        try:
            yield key["AccessKeyId"], key["SecretAccessKey"]
        finally:
            self._set_unchecked_requests("inf")

    def _set_unchecked_requests(self, count: str) -> None:
        requests.post(f"{self.endpoint_url}/moto-api/reset-auth", data=count, timeout=10).raise_for_status()

    def _admin(self, service: str):
        return _session().client(
            service,
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
        )


@dataclass(frozen=True)
class S3Bucket:
    """An empty bucket of the test server; ``options`` are connection options that reach it."""

    server: S3Server
    name: str
    client: Any

    def put(self, key: str, body: bytes | str) -> None:
        self.client.put_object(Bucket=self.name, Key=key, Body=body.encode() if isinstance(body, str) else body)

    def put_many(self, objects: dict[str, bytes | str]) -> None:
        """Store objects straight into the server's store, which lives in this process: thousands
        take milliseconds instead of seconds over HTTP. Reads still go over HTTP."""
        from moto.s3.models import s3_backends

        partition, account = s3_backends.bucket_accounts[self.name]
        store = s3_backends[account][partition]
        for key, body in objects.items():
            store.put_object(self.name, key, body.encode() if isinstance(body, str) else body)

    def options(self, **overrides: Any) -> dict:
        """Options of an ``s3`` connection to this bucket, credentials as ``{env: ...}`` references."""
        return {
            "bucket": self.name,
            "endpoint_url": self.server.endpoint_url,
            "region": self.server.region,
            "access_key_id": {"env": ACCESS_KEY_ENV},
            "secret_access_key": {"env": SECRET_KEY_ENV},
            **overrides,
        }


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(f"http://{host}:{port}")
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3Bucket]:
    """A new, empty bucket; the environment holds the keys its ``options()`` refer to."""
    monkeypatch.setenv(ACCESS_KEY_ENV, s3_server.access_key_id)
    monkeypatch.setenv(SECRET_KEY_ENV, s3_server.secret_access_key)
    client = s3_server.client()
    bucket = S3Bucket(s3_server, f"test-{uuid.uuid4().hex[:16]}", client)
    client.create_bucket(Bucket=bucket.name)
    yield bucket
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket.name):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
        if keys:
            client.delete_objects(Bucket=bucket.name, Delete={"Objects": keys, "Quiet": True})
    client.delete_bucket(Bucket=bucket.name)
