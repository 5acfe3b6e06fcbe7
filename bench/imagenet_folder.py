"""ImageNet-shaped image folders for measuring what opening a dataset costs at scale.

    python bench/imagenet_folder.py DIR --classes 1000 --per-class 1300     # 1.28M files
    python bench/imagenet_folder.py DIR --per-class 130 --s3 s3://bench/train

DIR/n00000000/n00000000_0.JPEG, ...: class folders named like WordNet ids, files named like
ImageNet's. Every file is a hard link to one of a few real 500x375 photo JPEGs (ImageNet's
typical size), so 1.28M files cost directory entries, not 140 GB: listing, stat-ing and
decoding behave as on the real thing (a decode reads a real JPEG). With --s3 the same
layout is uploaded as objects (a small JPEG body each) to a running S3 server.
"""
from __future__ import annotations

import argparse
import io
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

SOURCE_PHOTOS = 8
PHOTO_SIZE = (500, 375)


def class_id(index: int) -> str:
    return f"n{index:08d}"


def source_photos() -> list:
    """A few real photos: scikit-image's (the bench extra), else matplotlib's one photo cropped
    several ways (enough for tests of this script)."""
    from PIL import Image

    try:
        from skimage import data
    except ImportError:
        from matplotlib import cbook

        with Image.open(cbook.get_sample_data("grace_hopper.jpg")) as photo:
            photo = photo.convert("RGB")
            w, h = photo.size
            return [photo.crop((i * w // 16, i * h // 16, w - i * w // 32, h - i * h // 32)) for i in range(SOURCE_PHOTOS)]
    arrays = [data.astronaut(), data.coffee(), data.chelsea(), data.rocket(), data.hubble_deep_field(),
              data.immunohistochemistry(), data.retina(), data.colorwheel()][:SOURCE_PHOTOS]  # fmt: skip
    return [Image.fromarray(array).convert("RGB") for array in arrays]


def source_jpegs() -> list[bytes]:
    """The photos resized to ImageNet's typical 500x375, as JPEGs."""
    from PIL import Image

    encoded = []
    for photo in source_photos():
        image = photo.resize(PHOTO_SIZE, Image.BILINEAR)
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=90)
        encoded.append(buffer.getvalue())
    return encoded


CLASSES_PER_SOURCE_COPY = 40
"""A file system caps an inode's links (ext4: 65000), so each group of classes links its own copies."""


def make_local(root: Path, classes: int, per_class: int) -> None:
    sources = root.parent / f".{root.name}-sources"  # outside DIR: not a class folder
    sources.mkdir(parents=True, exist_ok=True)
    jpegs = source_jpegs()

    def source(index: int, i: int) -> Path:
        path = sources / f"photo{(index + i) % len(jpegs)}-{index // CLASSES_PER_SOURCE_COPY}.JPEG"
        if not path.exists():
            path.write_bytes(jpegs[(index + i) % len(jpegs)])
        return path

    def make_class(index: int) -> None:
        folder = root / class_id(index)
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            target = folder / f"{class_id(index)}_{i}.JPEG"
            if not target.exists():
                os.link(source(index, i), target)

    with ThreadPoolExecutor(8) as pool:
        for done, _ in enumerate(pool.map(make_class, range(classes)), 1):
            if done % 100 == 0:
                print(f"  {done}/{classes} class folders", file=sys.stderr)


def make_s3(uri: str, classes: int, per_class: int) -> None:
    """Upload the layout to `uri` (s3://bucket/prefix; the bucket is created when missing)."""
    import boto3

    bucket, _, prefix = uri.removeprefix("s3://").partition("/")
    client = boto3.client("s3")
    if bucket not in {b["Name"] for b in client.list_buckets()["Buckets"]}:
        client.create_bucket(Bucket=bucket)
    bodies = source_jpegs()

    def put_class(index: int) -> None:
        for i in range(per_class):
            key = f"{prefix}/{class_id(index)}/{class_id(index)}_{i}.JPEG".lstrip("/")
            client.put_object(Bucket=bucket, Key=key, Body=bodies[(index + i) % len(bodies)])

    with ThreadPoolExecutor(16) as pool:
        for done, _ in enumerate(pool.map(put_class, range(classes)), 1):
            if done % 100 == 0:
                print(f"  {done}/{classes} class prefixes", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("root", nargs="?", help="local folder to fill")
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--per-class", type=int, default=130)
    parser.add_argument("--s3", help="upload to this s3:// prefix instead (AWS_ENDPOINT_URL names the server)")
    args = parser.parse_args()
    start = time.perf_counter()
    if args.s3:
        make_s3(args.s3, args.classes, args.per_class)
    else:
        make_local(Path(args.root), args.classes, args.per_class)
    print(f"{args.classes * args.per_class} files in {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
