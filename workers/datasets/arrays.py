"""CIFAR-10, CIFAR-100 and MNIST from a local torchvision root, never downloaded:

    --data cifar10:ROOT    ROOT/cifar-10-batches-py/{data_batch_1..5, batches.meta}
    --data cifar100:ROOT   ROOT/cifar-100-python/{train, meta}  (the 100 fine classes)
    --data mnist:ROOT      ROOT/MNIST/raw/train-images-idx3-ubyte and train-labels-idx1-ubyte (or .gz)

These are the files torchvision's CIFAR10/CIFAR100/MNIST(download=True) leave under ROOT.
The training sets are read. CIFAR's files are pickles: they are read by an unpickler that
builds only numpy arrays and plain values, so a tampered file cannot run code.
"""
from __future__ import annotations

import gzip
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

from workers.datasets.cache import fingerprint_files
from workers.datasets.errors import DatasetError
from workers.datasets.loaded import LoadedImages

if TYPE_CHECKING:  # imported where used: listing a dataset needs no numpy
    import numpy as np

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR100_URL = "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz"
MNIST_NAMES = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four",
               "5 - five", "6 - six", "7 - seven", "8 - eight", "9 - nine"]  # fmt: skip


class _ArraysOnly(pickle.Unpickler):
    """Builds numpy arrays and plain Python values; refuses any other global."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"), ("_codecs", "encode"),
    }  # fmt: skip

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refused to load {module}.{name}")
        if module.startswith("numpy.core"):  # numpy 2 moved numpy.core to numpy._core
            module = module.replace("numpy.core", "numpy._core", 1)
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            loaded = _ArraysOnly(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as exc:
        raise DatasetError(f"{path} is not a readable CIFAR batch ({exc})") from None
    if not isinstance(loaded, dict):
        raise DatasetError(f"{path} is not a CIFAR batch (it holds a {type(loaded).__name__})")
    return {(k.decode() if isinstance(k, bytes) else k): v for k, v in loaded.items()}


def _names(values) -> list[str]:
    """Class names as text (files written by Python 3 hold bytes; Python 2's read as str)."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values]


class _ArrayDataset:
    """A whole labelled training set that fits in memory: (N, H, W[, C]) uint8 + labels."""

    name: str
    class_names: list[str]
    files: list[Path]

    @property
    def class_ids(self) -> list[str]:
        return list(self.class_names)

    def fingerprint(self, classes: list[int]) -> str:
        return fingerprint_files((path, None, None) for path in self.files)  # every class comes from the same files

    def _arrays(self):
        raise NotImplementedError

    def load_classes(self, classes: list[int], image_size: int) -> LoadedImages:
        import numpy as np
        import torch

        images, labels = self._arrays()
        wanted = np.isin(labels, classes)
        local = {c: i for i, c in enumerate(classes)}
        chosen = torch.from_numpy(np.ascontiguousarray(images[wanted]))
        chosen = chosen.unsqueeze(1) if chosen.dim() == 3 else chosen.permute(0, 3, 1, 2)  # NCHW
        return LoadedImages(
            images=to_rgb_size(chosen, image_size),
            labels=torch.tensor([local[int(c)] for c in labels[wanted]], dtype=torch.long),
            skipped=0,
        )


def to_rgb_size(images, image_size: int):
    """(N, 1 or 3, H, W) uint8 -> (N, 3, S, S) uint8: gray repeated, resized with antialiasing."""
    import torch
    import torch.nn.functional as F

    if images.shape[1] == 1:
        images = images.expand(-1, 3, -1, -1)
    if images.shape[-1] != image_size or images.shape[-2] != image_size:
        resized = F.interpolate(images.float(), size=(image_size, image_size), mode="bilinear", antialias=True)
        images = resized.round().clamp(0, 255).to(torch.uint8)
    return images.contiguous()


def _require(path: Path, what: str, url: str | None) -> Path:
    if not path.is_file():
        where = f" (download {url} and extract it in {path.parent.parent})" if url else ""
        raise DatasetError(f"{what} not found: {path} is missing{where}; acgan-ensemble never downloads")
    return path


class Cifar10Dataset(_ArrayDataset):
    def __init__(self, root: str):
        folder = Path(root) / "cifar-10-batches-py"
        self.name = f"cifar10:{root}"
        self.files = [_require(folder / f"data_batch_{i}", "CIFAR-10", CIFAR10_URL) for i in range(1, 6)]
        meta = _unpickle(_require(folder / "batches.meta", "CIFAR-10", CIFAR10_URL))
        self.class_names = _names(meta["label_names"])

    def _arrays(self):
        import numpy as np

        batches = [_unpickle(path) for path in self.files]
        data = np.concatenate([np.asarray(b["data"], dtype=np.uint8) for b in batches])
        labels = np.concatenate([np.asarray(b["labels"], dtype=np.int64) for b in batches])
        return data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1), labels


class Cifar100Dataset(_ArrayDataset):
    def __init__(self, root: str):
        folder = Path(root) / "cifar-100-python"
        self.name = f"cifar100:{root}"
        self.files = [_require(folder / "train", "CIFAR-100", CIFAR100_URL)]
        meta = _unpickle(_require(folder / "meta", "CIFAR-100", CIFAR100_URL))
        self.class_names = _names(meta["fine_label_names"])

    def _arrays(self):
        import numpy as np

        batch = _unpickle(self.files[0])
        data = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return data, np.asarray(batch["fine_labels"], dtype=np.int64)


def _read_idx(path: Path, magic: int) -> "np.ndarray":
    """An MNIST idx file: big-endian magic, dimension sizes, then uint8 data."""
    import numpy as np

    raw = path.read_bytes()
    if path.suffix == ".gz":
        raw = gzip.decompress(raw)
    header = np.frombuffer(raw[:4], dtype=">i4")[0] if len(raw) >= 4 else -1
    if header != magic:
        raise DatasetError(f"{path} is not an MNIST idx file (magic {header}, expected {magic})")
    dims = magic & 0xFF
    shape = np.frombuffer(raw[4 : 4 + 4 * dims], dtype=">i4").astype(int)
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
    if data.size != int(np.prod(shape)):
        raise DatasetError(f"{path} is truncated: {data.size} bytes of data for shape {tuple(shape)}")
    return data.reshape(shape)


def _idx_file(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise DatasetError(
        f"MNIST not found: {folder / stem} is missing (torchvision's MNIST(root, download=True) puts it "
        f"there); acgan-ensemble never downloads"
    )


class MnistDataset(_ArrayDataset):
    def __init__(self, root: str):
        folder = Path(root) / "MNIST" / "raw"
        self.name = f"mnist:{root}"
        self.files = [_idx_file(folder, "train-images-idx3-ubyte"), _idx_file(folder, "train-labels-idx1-ubyte")]
        self.class_names = list(MNIST_NAMES)

    def _arrays(self):
        images = _read_idx(self.files[0], 2051)
        labels = _read_idx(self.files[1], 2049).astype("int64")
        if len(images) != len(labels):
            raise DatasetError(f"MNIST under {self.files[0].parent} has {len(images)} images but {len(labels)} labels")
        return images, labels


SOURCES = {"cifar10": Cifar10Dataset, "cifar100": Cifar100Dataset, "mnist": MnistDataset}
