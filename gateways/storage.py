"""Object storage for uploaded files (provider application documents), behind one small
interface: ``Storage`` with ``put``, ``get`` and ``delete`` of opaque keys.

Backends (``settings.storage_backend``):

* ``LocalDiskStorage`` (``"local"``, the default): one file per key under ``settings.storage_local_dir``
  (default ``<data_dir>/uploads``). Writes go to a temporary file in the same directory, then
  ``os.replace`` it into place, so a reader never sees half a file.
* ``S3Storage`` (``"s3"``): an S3-compatible bucket through boto3 (AWS, MinIO, Cloudflare R2 ...),
  ``storage_s3_endpoint_url`` / ``storage_s3_bucket`` / ``storage_s3_region`` and the optional key
  pair. Objects are written with ``ServerSideEncryption=AES256`` (SSE-S3).

Both are async: file system and boto3 calls (blocking) run in a worker thread
(``asyncio.to_thread``), never on the event loop. Keys are ``[A-Za-z0-9/_.-]`` without ``..``
segments (``InvalidKey`` otherwise), so a key can never name a path outside the storage root.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO, Protocol

from settings import Settings, get_settings

_KEY = re.compile(r"[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*")
_CHUNK = 1024 * 1024


class StorageError(Exception):
    """The backend failed (disk full, bucket unreachable ...)."""


class InvalidKey(StorageError):
    """A key outside ``[A-Za-z0-9/_.-]``, empty, absolute, or with a ``.``/``..`` segment."""


class ObjectNotFound(StorageError):
    """``get`` of a key that holds nothing."""


def check_key(key: str) -> str:
    """``key`` when it is a safe relative key. Raises ``InvalidKey``."""
    if not _KEY.fullmatch(key) or any(part in (".", "..") for part in key.split("/")) or len(key) > 512:
        raise InvalidKey(f"invalid storage key {key!r}")
    return key


def _read_all(data: bytes | BinaryIO) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data)
    chunks = []
    while chunk := data.read(_CHUNK):
        chunks.append(chunk)
    return b"".join(chunks)


class Storage(Protocol):
    """Where uploaded files live. ``data`` is bytes or a binary stream (read to its end)."""

    async def put(self, key: str, data: bytes | BinaryIO, content_type: str) -> None:
        """Store ``data`` under ``key`` (replacing what was there). Raises ``InvalidKey``, ``StorageError``."""
        ...

    async def get(self, key: str) -> bytes:
        """The bytes under ``key``. Raises ``ObjectNotFound``, ``InvalidKey``, ``StorageError``."""
        ...

    async def delete(self, key: str) -> None:
        """Remove ``key``; nothing there is not an error. Raises ``InvalidKey``, ``StorageError``."""
        ...


class LocalDiskStorage:
    """Files under ``root`` (created on first write), one per key; the content type is not kept
    (the database row holds it)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    async def put(self, key: str, data: bytes | BinaryIO, content_type: str) -> None:
        path = self._path(key)

        def write() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".upload-")
            try:
                with os.fdopen(fd, "wb") as out:
                    if isinstance(data, (bytes, bytearray, memoryview)):
                        out.write(data)
                    else:
                        while chunk := data.read(_CHUNK):
                            out.write(chunk)
                    out.flush()
                    os.fsync(out.fileno())
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise

        try:
            await asyncio.to_thread(write)
        except OSError as exc:
            raise StorageError(f"could not write {key}: {exc.strerror}") from exc

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError as exc:
            raise ObjectNotFound(key) from exc
        except OSError as exc:
            raise StorageError(f"could not read {key}: {exc.strerror}") from exc

    async def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            await asyncio.to_thread(path.unlink, True)
        except OSError as exc:
            raise StorageError(f"could not delete {key}: {exc.strerror}") from exc


class S3Storage:
    """An S3-compatible bucket (boto3). ``client`` may be given (tests); otherwise one is built from
    the endpoint, region and keys (absent keys: boto3's usual credential chain)."""

    def __init__(self, *, bucket: str, endpoint_url: str | None = None, region: str = "us-east-1",
                 access_key_id: str | None = None, secret_access_key: str | None = None, client=None) -> None:
        self.bucket = bucket
        if client is None:
            import boto3

            client = boto3.client("s3", endpoint_url=endpoint_url, region_name=region,
                                  aws_access_key_id=access_key_id, aws_secret_access_key=secret_access_key)
        self.client = client

    async def put(self, key: str, data: bytes | BinaryIO, content_type: str) -> None:
        body = _read_all(data)
        await self._call("put_object", Bucket=self.bucket, Key=check_key(key), Body=body, ContentType=content_type,
                         ServerSideEncryption="AES256")

    async def get(self, key: str) -> bytes:
        from botocore.exceptions import ClientError

        try:
            response = await asyncio.to_thread(self.client.get_object, Bucket=self.bucket, Key=check_key(key))
            return await asyncio.to_thread(response["Body"].read)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise ObjectNotFound(key) from exc
            raise StorageError(f"S3 get {key}: {exc}") from exc
        except Exception as exc:  # botocore connection errors
            raise StorageError(f"S3 get {key}: {exc}") from exc

    async def delete(self, key: str) -> None:
        await self._call("delete_object", Bucket=self.bucket, Key=check_key(key))

    async def _call(self, method: str, **kwargs) -> None:
        try:
            await asyncio.to_thread(getattr(self.client, method), **kwargs)
        except Exception as exc:  # botocore ClientError, EndpointConnectionError ...
            raise StorageError(f"S3 {method} {kwargs.get('Key')}: {exc}") from exc


def storage_from_settings(settings: Settings | None = None) -> Storage:
    """The backend ``settings.storage_backend`` names (a new object per call: cheap for local disk;
    for S3, callers keep it as long as they need one client)."""
    s = settings or get_settings()
    if s.storage_backend == "s3":
        return S3Storage(
            bucket=s.storage_s3_bucket, endpoint_url=s.storage_s3_endpoint_url, region=s.storage_s3_region,
            access_key_id=s.storage_s3_access_key_id.get_secret_value() if s.storage_s3_access_key_id else None,
            secret_access_key=(s.storage_s3_secret_access_key.get_secret_value()
                               if s.storage_s3_secret_access_key else None),
        )
    return LocalDiskStorage(s.storage_local_dir or Path(s.data_dir) / "uploads")


_cached: tuple[tuple, Storage] | None = None


def get_storage() -> Storage:
    """The process's storage backend, rebuilt when the storage settings change (tests change them)."""
    global _cached
    s = get_settings()
    key = (s.storage_backend, s.storage_local_dir, s.data_dir, s.storage_s3_bucket, s.storage_s3_endpoint_url,
           s.storage_s3_region, s.storage_s3_access_key_id, s.storage_s3_secret_access_key)
    if _cached is None or _cached[0] != key:
        _cached = (key, storage_from_settings(s))
    return _cached[1]
