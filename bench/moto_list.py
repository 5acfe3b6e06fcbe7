"""What one S3 LIST request costs on moto's server (the tests' and benchmarks' S3) as its
bucket grows, and so the least time any client needs to list an ImageNet-shaped bucket there.

    python bench/moto_list.py                     # buckets of 13k, 52k and 130k objects
    python bench/moto_list.py --sizes 13,130      # thousands of objects

A complete listing of N keys takes at least N / 1000 LIST requests (S3's largest page),
whatever the client does. The objects are put straight into the server's in-process store
(empty bodies, ImageNet-like keys `train/nXXXXXXXX/nXXXXXXXX_I.JPEG`, 130 per class folder),
so filling 130k takes seconds; the LISTs are real HTTP requests (boto3).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from storage import BUCKET, median_seconds, start_s3  # noqa: E402

PER_CLASS = 130


def fill(count: int, have: int) -> None:
    """Put objects `have`..`count` (in class folders of PER_CLASS) into moto's store directly."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    backend = s3_backends[DEFAULT_ACCOUNT_ID]["aws"]
    for i in range(have, count):
        folder = f"n{i // PER_CLASS:08d}"
        backend.put_object(BUCKET, f"train/{folder}/{folder}_{i % PER_CLASS}.JPEG", b"")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="13,52,130", help="bucket sizes in thousands of objects")
    args = parser.parse_args()
    start_s3()
    import boto3

    client = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    page = lambda: client.list_objects_v2(Bucket=BUCKET, Prefix="train/", MaxKeys=1000)  # noqa: E731
    folder = lambda: client.list_objects_v2(Bucket=BUCKET, Prefix="train/n00000001/", Delimiter="/")  # noqa: E731
    print("| objects in the bucket | one LIST of a class folder (130 keys) | one LIST page of 1000 keys | "
          "least time to list the bucket (N/1000 pages) | 1000 class-folder LISTs (what the coordinator sends) |")
    print("|---|---|---|---|---|")
    have = 0
    for size in (int(s) * 1000 for s in args.sizes.split(",")):
        fill(size, have)
        have = size
        assert page()["KeyCount"] == 1000 and folder()["KeyCount"] == PER_CLASS
        page_s, folder_s = median_seconds(page, 5), median_seconds(folder, 5)
        print(f"| {size:,} | {folder_s * 1000:.0f} ms | {page_s * 1000:.0f} ms | "
              f"{math.ceil(size / 1000) * page_s:.1f} s | {1000 * folder_s:.0f} s |")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
