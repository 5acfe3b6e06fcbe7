"""No object lands torn (issue 21): an upload interrupted at any point, Ctrl-C included, leaves
the old object whole (or none) on a real S3 server (moto's, on 127.0.0.1), through boto3 on
S3 and through pyarrow's generic path used for other stores."""
from __future__ import annotations

import io

import boto3
import pytest

from manifests.storage import ObjectLocation, location
from manifests.storage.objects import UPLOAD_PART_BYTES
from tests.helpers import S3_BUCKET

SIZE = 2 * UPLOAD_PART_BYTES + 12345  # three parts of a multipart upload


class Interrupted(io.RawIOBase):
    """`size` bytes that raise KeyboardInterrupt (what Ctrl-C raises) once `at` have been read."""

    def __init__(self, size: int, at: int):
        self.size, self.at, self.offset = size, at, 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.offset >= self.at:
            raise KeyboardInterrupt
        n = min(len(buffer), self.size - self.offset, self.at - self.offset)
        buffer[:n] = b"x" * n
        self.offset += n
        return n


def pending_uploads(prefix: str) -> list:
    key_prefix = prefix.split(f"s3://{S3_BUCKET}/", 1)[1]
    return boto3.client("s3").list_multipart_uploads(Bucket=S3_BUCKET, Prefix=key_prefix).get("Uploads", [])


def generic(file) -> ObjectLocation:
    """The same object through pyarrow alone: how a gs:// or hdfs:// location uploads."""
    return ObjectLocation(file.fs, file.base, file.path)


@pytest.mark.parametrize("path", ["s3", "generic"])
@pytest.mark.parametrize("at", [0, 1000, UPLOAD_PART_BYTES + 1, 2 * UPLOAD_PART_BYTES + 100])
def test_an_upload_interrupted_at_any_offset_leaves_the_old_object_whole(s3_prefix, path, at):
    file = location(s3_prefix) / "splits" / "000" / "generator.best.safetensors"
    file.write_bytes(b"the old generator")
    target = file if path == "s3" else generic(file)
    with pytest.raises(KeyboardInterrupt):
        target.upload(io.BufferedReader(Interrupted(SIZE, at), buffer_size=1 << 20))
    assert file.read_bytes() == b"the old generator"
    assert [e.name for e in file.parent.list()] == ["generator.best.safetensors"]  # no staging key left
    assert not pending_uploads(s3_prefix)  # the multipart upload was aborted, not left to bill


@pytest.mark.parametrize("path", ["s3", "generic"])
def test_an_interrupted_first_upload_leaves_no_object(s3_prefix, path):
    file = location(s3_prefix) / "classifier.safetensors"
    target = file if path == "s3" else generic(file)
    with pytest.raises(KeyboardInterrupt):
        target.upload(io.BufferedReader(Interrupted(SIZE, UPLOAD_PART_BYTES + 1)))
    assert not file.exists() and not pending_uploads(s3_prefix)


@pytest.mark.parametrize("path", ["s3", "generic"])
@pytest.mark.parametrize("size", [0, 10, UPLOAD_PART_BYTES, SIZE])
def test_a_whole_upload_of_any_size_reads_back_the_same(s3_prefix, path, size):
    file = location(s3_prefix) / "state.pt"
    data = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    (file if path == "s3" else generic(file)).upload(io.BytesIO(data))
    assert file.read_bytes() == data and not pending_uploads(s3_prefix)
    file.write_with(lambda tmp: open(tmp, "wb").write(data[::-1]))  # write_with uploads the same way
    assert file.read_bytes() == data[::-1]
