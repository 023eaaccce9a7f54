"""S3 through boto3: the transport half of the host, kept apart from the engine's rules.

Files move by path (boto3 reads and writes them itself), so their bytes never pass through the
component boundary. Every failure becomes a ``StorageError`` naming the operation and the key.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import boto3
from boto3.exceptions import Boto3Error
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from .errors import StorageError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client


@dataclass(frozen=True)
class S3Config:
    """Where S3 is and who we are there; unset fields follow boto3's default chain
    (environment, ``~/.aws``, instance roles), ``AWS_ENDPOINT_URL_S3`` included."""

    access_key_id: str | None = None
    secret_access_key: str | None = None
    session_token: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    profile: str | None = None

    def client(self) -> S3Client:
        session = boto3.session.Session(profile_name=self.profile)
        return session.client(
            "s3",
            region_name=self.region,
            endpoint_url=self.endpoint_url,
            aws_access_key_id=self.access_key_id,
            aws_secret_access_key=self.secret_access_key,
            aws_session_token=self.session_token,
            config=Config(retries={"mode": "standard", "max_attempts": 5}),
        )


class Bucket:
    """One bucket, and the few operations the host performs on it."""

    def __init__(self, name: str, config: S3Config = S3Config()) -> None:
        self.name = name
        self.client = config.client()

    def create(self) -> None:
        """Creates the bucket if it does not exist yet."""
        with _storage_errors("create bucket", self.name):
            try:
                self.client.head_bucket(Bucket=self.name)
            except ClientError as e:
                if _status(e) != 404:
                    raise
                region = self.client.meta.region_name
                if region in (None, "us-east-1"):  # the one region S3 refuses a constraint for
                    self.client.create_bucket(Bucket=self.name)
                else:
                    self.client.create_bucket(
                        Bucket=self.name,
                        CreateBucketConfiguration={"LocationConstraint": region},  # type: ignore[typeddict-item]
                    )

    def keys(self, prefix: str) -> set[str]:
        """Every key under ``prefix``, by one paginated listing."""
        found: set[str] = set()
        with _storage_errors("list", prefix):
            pages = self.client.get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.name, Prefix=prefix):
                found.update(obj["Key"] for obj in page.get("Contents", []))
        return found

    def upload_file(self, key: str, path: os.PathLike[str] | str) -> None:
        """Uploads a local file by path (boto3 switches to multipart for large ones)."""
        with _storage_errors("upload", key):
            self.client.upload_file(os.fspath(path), self.name, key)


def _status(e: ClientError) -> int:
    return int(e.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))


@contextmanager
def _storage_errors(operation: str, key: str) -> Iterator[None]:
    """Turns boto3's exceptions inside the block into ``StorageError``."""
    try:
        yield
    except (ClientError, BotoCoreError, Boto3Error) as e:
        raise StorageError(f"S3 {operation} failed for {key}: {e}", path=key) from e
