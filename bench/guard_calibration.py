"""Calibrating the quality guard: real images used as samples must pass, partial collapse must not.

    pip install -e '.[bench]'                  # scikit-learn, scikit-image, pydicom, nibabel: their bundled images
    python bench/guard_calibration.py          # the six kinds of bench/real_sets.py, ~1 min

For each dataset (bench/real_sets.py: digits, photos, textures, and the held-out scans,
medical images and leftovers), two splits of five classes, each with the split classifier the product trains
for a split of the folder recipe's steps (REAL_IMAGES.steps; workers/quality/yardstick.py).
Every class is then scored by the product's own Yardstick.score on 32 "samples"
(GUARD_SAMPLES) made from real images it never trained on:

    real       32 new real images of the class                         must pass
    shrunk     the same, each pulled halfway to the class's mean image  must fail (varies half as much)
    repeat-K   K new real images, each repeated (with +-4 grey levels    must fail
               of noise) to 32, K = 1, 2, 4, 8
    part       the 32 nearest (in pixels) to one image of a pool of       must fail where the part is
               new real images: one region of the class                   visibly narrower than the class
    smooth     the same around the pool's least-textured image: the sky  (reported; see bench/README.md)
               of a photo without its subject

and the guard's verdict (workers/quality/verdicts.py) of each. Draws six random samples of each
case, framed by their verdict, in bench/out/guard-calibration-DATASET.png. Prints, per dataset and case,
the range of diversity and distinctness over its classes and how many were called ok; writes
bench/out/guard-calibration.json. Exits 1 when a real class is not ok or a shrunk or repeated
one is.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import real_sets  # noqa: E402
from workers.presets import REAL_IMAGES  # noqa: E402
from workers.quality.guard import classifier_steps  # noqa: E402
from workers.quality.verdicts import OK, guard_verdict  # noqa: E402
from workers.quality.yardstick import GUARD_SAMPLES, load_or_train_yardstick, to_input  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
MUST_PASS, MUST_FAIL = ("real",), ("shrunk", "repeat-1", "repeat-2", "repeat-4", "repeat-8")
CPU = torch.device("cpu")
GRID_COLUMNS = 6


def tensor(images: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()


def cases(pool: torch.Tensor, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """uint8 samples per case, GUARD_SAMPLES each, from real images that are not the guard's
    references (new ones, and the class's other training images)."""
    n = GUARD_SAMPLES
    real = pool[rng.permutation(len(pool))[:n]]
    mean = pool.float().mean(0, keepdim=True)
    made = {"real": real, "shrunk": (mean + 0.5 * (real.float() - mean)).round().clamp(0, 255).to(torch.uint8)}
    for k in (1, 2, 4, 8):
        picked = real[:k].repeat((n + k - 1) // k, 1, 1, 1)[:n].float()
        noise = torch.from_numpy(rng.integers(-4, 5, picked.shape)).float()
        made[f"repeat-{k}"] = (picked + noise).clamp(0, 255).to(torch.uint8)
    flat = pool.flatten(1).float()
    for name, anchor in (("part", int(rng.integers(len(pool)))), ("smooth", int(flat.std(1).argmin()))):
        nearest = torch.cdist(flat[anchor : anchor + 1], flat)[0].argsort()[:n]
        made[name] = pool[nearest]
    return made


def calibrate(dataset: str, work: Path, rng: np.random.Generator, rounds: int) -> list[dict]:
    train, held = real_sets.load(dataset)
    names = list(train)
    rows, grid = [], {}
    for split, members in enumerate((names[:5], names[5:])):
        images = torch.cat([tensor(train[c]) for c in members])
        labels = torch.cat([torch.full((len(train[c]),), k) for k, c in enumerate(members)])
        yardstick = load_or_train_yardstick(work / f"{dataset}-{split}", images, labels, len(members), seed=split,
                                            device=CPU, steps=classifier_steps(REAL_IMAGES.steps))  # fmt: skip
        for k, name in enumerate(members):
            spare = labels == k
            spare[yardstick.references[k]] = False  # the class's images that are not the guard's references
            pool = torch.cat([tensor(held[name]), images[spare]])
            for round_ in range(rounds):
                for case, samples in cases(pool, rng).items():
                    score = yardstick.score(to_input(samples), k)
                    verdict = guard_verdict(score.accuracy, yardstick.real_accuracy[k], score.diversity, score.distinctness)
                    rows.append({"dataset": dataset, "class": name, "case": case, "accuracy": score.accuracy,
                                 "diversity": score.diversity, "distinctness": score.distinctness, "verdict": verdict})  # fmt: skip
                    if round_ == 0:
                        shown = samples[rng.permutation(len(samples))[:GRID_COLUMNS]]  # any of them, not the first
                        grid.setdefault(name, {})[case] = (shown, verdict)
    OUT.mkdir(exist_ok=True)
    draw_grid(dataset, grid, OUT / f"guard-calibration-{dataset}.png")
    return rows


def draw_grid(dataset: str, grid: dict, path: Path) -> None:
    """One row per class, one block per case: the first samples, framed green when the guard
    says ok and red when it does not, so that a verdict can be checked against the pictures."""
    from PIL import Image, ImageDraw

    names, case_names = list(grid), list(next(iter(grid.values())))
    cell, gap, left, top = 34, 8, 150, 18
    block = GRID_COLUMNS * cell
    image = Image.new("RGB", (left + len(case_names) * (block + gap), top + len(names) * (cell + 4)), "white")
    draw = ImageDraw.Draw(image)
    for j, case in enumerate(case_names):
        draw.text((left + j * (block + gap), 2), case, fill="black")
    for i, name in enumerate(names):
        y = top + i * (cell + 4)
        draw.text((4, y + 12), name[:22], fill="black")
        for j, case in enumerate(case_names):
            samples, verdict = grid[name][case]
            x = left + j * (block + gap)
            draw.rectangle([x - 2, y - 2, x + block + 1, y + cell - 1], outline="green" if verdict == OK else "red", width=2)
            for c, sample in enumerate(samples):
                image.paste(Image.fromarray(sample.permute(1, 2, 0).numpy()), (x + c * cell + 1, y))
    image.save(path)


def summary(rows: list[dict]) -> bool:
    print(f"{'dataset':<9} {'case':<9} {'diversity min-max':>18} {'distinct. min-max':>18}  ok")
    right = True
    for dataset in dict.fromkeys(r["dataset"] for r in rows):
        for case in dict.fromkeys(r["case"] for r in rows):
            of = [r for r in rows if r["dataset"] == dataset and r["case"] == case]
            ok = [r["class"] for r in of if r["verdict"] == OK]
            d, c = [r["diversity"] for r in of], [r["distinctness"] for r in of]
            wrong = (case in MUST_PASS and len(ok) < len(of)) or (case in MUST_FAIL and ok)
            right &= not wrong
            shown = ", ".join(ok) if 0 < len(ok) < len(of) and case not in MUST_PASS else ""
            print(f"{dataset:<9} {case:<9} {min(d):>8.2f} - {max(d):<7.2f} {min(c):>7.2f} - {max(c):<7.2f}  "
                  f"{len(ok)}/{len(of)}{' WRONG' if wrong else ''} {shown}")  # fmt: skip
    return right


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=[*real_sets.DATASETS, "all"], default="all")
    parser.add_argument("--rounds", type=int, default=3, help="draws of the samples of every case, pooled")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a 1-CPU Ray task
    start = time.perf_counter()
    datasets = real_sets.DATASETS if args.dataset == "all" else (args.dataset,)
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory(prefix="guard-calibration-") as work:
        rows = [row for dataset in datasets for row in calibrate(dataset, Path(work), rng, args.rounds)]
    right = summary(rows)
    print(f"{time.perf_counter() - start:.0f} s; kinds added later (each held out until looked at, "
          f"bench/real_sets.py): {', '.join(real_sets.ADDED_LATER)}")
    OUT.mkdir(exist_ok=True)
    (OUT / "guard-calibration.json").write_text(json.dumps({"date": time.strftime("%Y-%m-%d"), "rows": rows}, indent=1))
    sys.exit(0 if right else 1)


if __name__ == "__main__":
    main()
