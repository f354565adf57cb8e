"""The storage interface (gateways/storage.py): local disk, and S3 against a local moto server (S3
is outside our machine, so a local stand-in speaking its HTTP API is allowed)."""

from __future__ import annotations

import hashlib
import io

import pytest

from gateways.storage import InvalidKey, LocalDiskStorage, ObjectNotFound, S3Storage, StorageError
from tests.support.storage import free_port, s3_client

PDF = b"%PDF-1.7\n" + bytes(range(256)) * 8


# --- local disk ------------------------------------------------------------------------------------

async def test_local_disk_stores_reads_and_deletes_bytes_and_streams(tmp_path):
    # given
    storage = LocalDiskStorage(tmp_path / "uploads")
    # when
    await storage.put("applications/1/a", PDF, "application/pdf")
    await storage.put("applications/1/b", io.BytesIO(PDF * 3), "application/pdf")
    got_a, got_b = await storage.get("applications/1/a"), await storage.get("applications/1/b")
    await storage.delete("applications/1/a")
    await storage.delete("applications/1/never-stored")  # nothing there: not an error
    # then
    assert got_a == PDF and got_b == PDF * 3
    assert sorted(p.name for p in (tmp_path / "uploads" / "applications" / "1").iterdir()) == ["b"]
    with pytest.raises(ObjectNotFound):
        await storage.get("applications/1/a")


@pytest.mark.parametrize("key", ["../escape", "/abs", "a/../../b", "a//b", "", "a/./b", "spaces here", "a\\b"])
async def test_local_disk_refuses_keys_that_could_leave_its_root(tmp_path, key):
    # given
    storage = LocalDiskStorage(tmp_path / "uploads")
    # when / then
    with pytest.raises(InvalidKey):
        await storage.put(key, PDF, "application/pdf")
    assert not (tmp_path / "uploads").exists() or list((tmp_path / "uploads").rglob("*")) == []


# --- S3 (moto) -------------------------------------------------------------------------------------

async def test_s3_stores_reads_and_deletes_with_server_side_encryption(moto_endpoint, bucket):
    # given
    storage = S3Storage(bucket=bucket, endpoint_url=moto_endpoint, access_key_id="testing",
                        secret_access_key="testing")
    # when
    await storage.put("applications/7/doc", PDF, "application/pdf")
    await storage.put("applications/7/stream", io.BytesIO(PDF), "application/pdf")
    head = s3_client(moto_endpoint).head_object(Bucket=bucket, Key="applications/7/doc")
    got = await storage.get("applications/7/doc")
    await storage.delete("applications/7/doc")
    # then
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(PDF).hexdigest()
    assert head["ContentType"] == "application/pdf"
    assert head["ContentLength"] == len(PDF)
    assert head["ServerSideEncryption"] == "AES256"
    listed = s3_client(moto_endpoint).list_objects_v2(Bucket=bucket)
    assert [o["Key"] for o in listed["Contents"]] == ["applications/7/stream"]
    with pytest.raises(ObjectNotFound):
        await storage.get("applications/7/doc")


async def test_s3_unreachable_or_missing_bucket_is_a_storage_error(moto_endpoint):
    # given: a bucket that does not exist, and an endpoint nobody listens on
    missing = S3Storage(bucket="no-such-bucket", endpoint_url=moto_endpoint, access_key_id="testing",
                        secret_access_key="testing")
    dead = S3Storage(bucket="x", endpoint_url=f"http://127.0.0.1:{free_port()}", access_key_id="testing",
                     secret_access_key="testing")
    # when / then
    with pytest.raises(StorageError):
        await missing.put("a", PDF, "application/pdf")
    with pytest.raises(StorageError):
        await dead.get("a")
