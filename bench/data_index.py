"""What opening an ImageNet-shaped image folder costs: the coordinator's one listing, and
each split's data overhead, at two dataset sizes, on local disk and on a local S3 server.

    python bench/data_index.py                       # 130k files, local disk and S3 (~4 min)
    python bench/data_index.py --sizes 130,1300      # + 1.28M files on local disk (~2 min more)
    python bench/data_index.py --parts decode        # decode throughput and cache size per preset
    git worktree add /tmp/before fe9618e && python bench/data_index.py --before /tmp/before   # + the old cost

The folders are made by bench/imagenet_folder.py (1000 class folders of N hard-linked real
500x375 JPEGs) under --scratch, kept between runs. Every figure is measured in a fresh
process, so that its peak resident memory (ru_maxrss) is its own:

- listing: the coordinator's `open_dataset` of the whole folder (every class folder listed,
  every file's size and time) plus writing RUN/data-index.parquet; seconds, peak memory
  and the index's size. The process imports torchvision for ImageNet's class names, as the
  coordinator of a real ImageNet run does.
- split: what one split's worker does before training, decoding aside: read its classes'
  rows of the index, fingerprint them for the decode cache, and list its own 10 class
  folders to check nothing changed since the launch; seconds, and the memory those rows
  take (tracemalloc of Python objects plus the Arrow pool).
- load: a split's whole data phase on one core: the overhead, then its images read and
  decoded to 32 px (on S3, a GET per file).
- before (--before CHECKOUT): a split's overhead with the code of another checkout; with the
  commit before the index (fe9618e), each worker opened, so listed, the whole folder.
- decode: one split's 10 classes decoded to 32, 64 and 128 px on one thread (images/s
  per core) and the decode cache's size per image; a split of ImageNet's 13k images scales
  from there.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

SPLIT_CLASSES = list(range(410, 420))
"""Split 41 of 100, the one `ensemble sample --label 417` routes to (--classes N: the 10 at 41% of N)."""
CLASSES = 1000


def peak_mb() -> float:
    """This process's peak resident memory. Not ru_maxrss: a child's starts at its parent's
    (the parent here runs the S3 server, which holds every object in memory)."""
    from memory import kib  # bench/memory.py's reader of /proc/PID/status

    return kib(os.getpid(), "VmHWM") / 1024


def measure_listing(root: str, index_path: str) -> dict:
    
    from manifests.storage import location
    from workers.datasets import open_dataset

    start = time.perf_counter()
    dataset = open_dataset(root)
    listed = time.perf_counter() - start
    dataset.index.write(location(index_path))
    return {"files": len(dataset.index), "list_s": listed, "list_and_write_s": time.perf_counter() - start,
            "index_mb": location(index_path).read_bytes().__len__() / 1e6,
            "peak_mb": peak_mb()}  # fmt: skip


def measure_split(root: str, index_path: str) -> dict:
    import tracemalloc

    import numpy  # noqa: F401  what the reading imports, imported before the clock starts
    import pyarrow as pa
    import pyarrow.compute  # noqa: F401
    import pyarrow.parquet  # noqa: F401

    from manifests.storage import location
    from workers.datasets import SplitFolder

    start = time.perf_counter()
    split = SplitFolder(location(index_path), SPLIT_CLASSES)
    split.fingerprint(SPLIT_CLASSES)
    read = time.perf_counter() - start
    split.check_unchanged(SPLIT_CLASSES)
    total = time.perf_counter() - start
    del split
    # Memory in a second pass: tracemalloc slows Python down, and the first pass's imports are done.
    tracemalloc.start()
    arrow_before = pa.total_allocated_bytes()
    split = SplitFolder(location(index_path), SPLIT_CLASSES)
    names = [split.index.files(c) for c in SPLIT_CLASSES]
    names_mb = (tracemalloc.get_traced_memory()[0] + pa.total_allocated_bytes() - arrow_before) / 1e6
    return {"files": sum(len(n.names) for n in names), "read_and_fingerprint_s": read, "overhead_s": total,
            "names_mb": names_mb}  # fmt: skip


def measure_load(root: str, index_path: str) -> dict:
    """A split's whole data phase, as its worker runs it on one core: the overhead above, then
    its images read and decoded to 32 px (from the store: a GET per file on S3)."""
    import torch

    from workers.datasets import load_split_images

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as scratch:
        start = time.perf_counter()
        data = load_split_images(root, SPLIT_CLASSES, 32, cache_dir=scratch, index=index_path)
        return {"images": len(data.images), "load_s": time.perf_counter() - start}


def measure_before(root: str) -> dict:
    """A split's data overhead as the code on PYTHONPATH has it: with --before CHECKOUT (a
    checkout of the commit before the index), every worker opened the whole dataset."""
    
    import torch  # noqa: F401  a worker has it imported already: not part of the overhead

    from workers.datasets import open_dataset

    rss_before = peak_mb()
    start = time.perf_counter()
    dataset = open_dataset(root)
    dataset.fingerprint(SPLIT_CLASSES)
    return {"overhead_s": time.perf_counter() - start,
            "names_mb": peak_mb() - rss_before}  # fmt: skip


def measure_decode(root: str, index_path: str) -> dict:
    import torch

    from manifests.storage import location
    from workers.datasets import SplitFolder
    from workers.datasets.cache import cache_path, write_cache

    torch.set_num_threads(1)
    split = SplitFolder(location(index_path), SPLIT_CLASSES)
    figures = {}
    with tempfile.TemporaryDirectory() as scratch:
        for size in (32, 64, 128):
            start = time.perf_counter()
            data = split.load_classes(SPLIT_CLASSES, size)
            seconds = time.perf_counter() - start
            path = cache_path(scratch, size)
            write_cache(path, "bench", data)
            figures[size] = {"images": len(data.images), "images_per_s_per_core": len(data.images) / seconds,
                             "cache_bytes_per_image": os.path.getsize(str(path)) / len(data.images)}  # fmt: skip
    return figures


PARTS = {"listing": measure_listing, "split": measure_split, "load": measure_load, "before": measure_before,
         "decode": measure_decode}  # fmt: skip


def in_fresh_process(part: str, *args: str, code: str | None = None) -> dict:
    """The part's figures, measured in a new process running `code` (a checkout; this one by default)."""
    code = code or str(Path(__file__).resolve().parents[1])
    result = subprocess.run([sys.executable, __file__, "--classes", str(CLASSES), "--child", code, part, *args],
                            capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": code})  # fmt: skip
    if result.returncode:
        raise SystemExit(f"{part} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def ensure_folder(scratch: Path, per_class: int) -> str:
    root = scratch / f"imagenet-{CLASSES}x{per_class}"
    last = root / f"n{CLASSES - 1:08d}"
    if not last.is_dir() or len(os.listdir(last)) != per_class:
        subprocess.run([sys.executable, str(Path(__file__).parent / "imagenet_folder.py"), str(root),
                        "--classes", str(CLASSES), "--per-class", str(per_class)], check=True)  # fmt: skip
    return str(root)


def ensure_s3_folder(per_class: int) -> str:
    from storage import start_s3

    start_s3()  # this process's moto server; the children reach it through AWS_ENDPOINT_URL
    uri = "s3://bench/train"
    subprocess.run([sys.executable, str(Path(__file__).parent / "imagenet_folder.py"), "--s3", uri,
                    "--classes", str(CLASSES), "--per-class", str(per_class)], check=True)  # fmt: skip
    return uri


def report(where: str, root: str, index_path: str, before: str | None) -> None:
    listing = in_fresh_process("listing", root, index_path)
    split = in_fresh_process("split", root, index_path)
    load = in_fresh_process("load", root, index_path)
    print(f"{where}, {listing['files']:,} files: coordinator listing {listing['list_s']:.1f} s "
          f"(+ index written: {listing['list_and_write_s']:.1f} s), peak {listing['peak_mb']:.0f} MB, "
          f"index {listing['index_mb']:.1f} MB")  # fmt: skip
    print(f"{where}, {listing['files']:,} files: per split {split['overhead_s'] * 1000:.0f} ms "
          f"(index rows + fingerprint {split['read_and_fingerprint_s'] * 1000:.0f} ms, the rest: its 10 folders "
          f"listed again), its {split['files']:,} file names {split['names_mb']:.1f} MB")  # fmt: skip
    print(f"{where}, {listing['files']:,} files: a split's data phase on one core (overhead, then "
          f"{load['images']:,} images read and decoded to 32 px) {load['load_s']:.1f} s")  # fmt: skip
    if before:
        old = in_fresh_process("before", root, code=before)
        print(f"{where}, {listing['files']:,} files: per split before the index (the whole folder listed by each), "
              f"{old['overhead_s']:.1f} s, its file names {old['names_mb']:.0f} MB")  # fmt: skip
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="130", help="files per class folder, comma-separated (1300: ImageNet)")
    parser.add_argument("--parts", default="local,s3", help="local, s3, decode (comma-separated)")
    parser.add_argument("--classes", type=int, default=1000, help="class folders (at least 10)")
    parser.add_argument("--scratch", default=os.path.join(tempfile.gettempdir(), "acgan-bench-data"))
    parser.add_argument("--before", metavar="CHECKOUT",
                        help="also measure a split's overhead with the code of this checkout (e.g. a `git worktree` "
                        "of the commit before the data index)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    global SPLIT_CLASSES, CLASSES
    CLASSES = args.classes
    SPLIT_CLASSES = list(range(CLASSES * 41 // 100, CLASSES * 41 // 100 + 10))
    if args.child:
        _, part, *rest = args.child  # the checkout is on PYTHONPATH
        sys.path.insert(0, args.child[0])
        print(json.dumps(PARTS[part](*rest)))
        return
    scratch = Path(args.scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    parts = args.parts.split(",")
    for per_class in map(int, args.sizes.split(",")):
        root = ensure_folder(scratch, per_class)
        index_path = str(scratch / f"index-{per_class}.parquet")
        if "local" in parts:
            report("local disk", root, index_path, args.before)
        if "decode" in parts:
            for size, figure in in_fresh_process("decode", root, index_path).items():
                print(f"decode to {size} px: {figure['images_per_s_per_core']:.0f} images/s per core; cache "
                      f"{figure['cache_bytes_per_image'] / 1024:.1f} KiB per image, "
                      f"{figure['cache_bytes_per_image'] * 13000 / 1e6:.0f} MB for a split of 13k images")  # fmt: skip
        if "s3" in parts and per_class <= 130:
            uri = ensure_s3_folder(per_class)
            report("S3 (moto on 127.0.0.1)", uri, "s3://bench/run/data-index.parquet", args.before)


if __name__ == "__main__":
    main()
