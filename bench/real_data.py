"""The default recipe on real image folders that ship inside packages, scored by `ensemble evaluate`.

    pip install -e '.[bench]'                          # scikit-learn and scikit-image, for their data
    python bench/real_data.py                          # both datasets, the defaults for --data DIR
    python bench/real_data.py --dataset photos --steps 3000 --set tac=true

Datasets (each written as an image folder, 10 classes, 32x32 RGB PNGs):
    digits   scikit-learn's 1797 handwritten digits (UCI), 8x8 grey upscaled to 32x32; 80%
             of each class (the rest is what bench/digits.py holds out)
    photos   natural-photo patches: 10 colour photographs shipped in scikit-image and
             scikit-learn (astronaut, coffee, chelsea, rocket, immunohistochemistry, hubble
             deep field, retina, motorcycle, china, flower), each shrunk to a 96 px short side;
             a class is 300 random 32x32 crops of one photograph

For each: `ensemble launch --data DIR --splits 2` (two AC-GANs of 5 classes; the defaults
unless --preset/--steps/--set are given), then `ensemble evaluate --json`. The goal (issue
10): every class recognised >= 90% by the split's own classifier, spreading >= 0.7 as much as
its real images, and no class flagged. Prints a row per class and writes
bench/out/real-DATASET.json; exits 1 when a goal is missed.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from command import ENSEMBLE  # noqa: E402
from digits import load_digits_32  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
ACCURACY_GOAL, DIVERSITY_GOAL = 0.9, 0.7
PHOTOS = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field", "retina",
          "stereo_motorcycle", "china", "flower"]  # fmt: skip


def _save(root: Path, classes: dict[str, list[np.ndarray]]) -> None:
    from PIL import Image

    if root.exists():
        shutil.rmtree(root)
    for name, images in classes.items():
        (root / name).mkdir(parents=True)
        for i, image in enumerate(images):
            Image.fromarray(image).save(root / name / f"{i:04d}.png")


def write_digits(root: Path) -> None:
    train, _, labels, _ = load_digits_32(held_out=0.2, seed=0)
    _save(root, {f"digit-{d}": [np.stack([im] * 3, axis=-1) for im in train[labels == d]] for d in range(10)})


def _photo(name: str) -> np.ndarray:
    if name in ("china", "flower"):
        from sklearn.datasets import load_sample_image

        return load_sample_image(f"{name}.jpg")
    import skimage.data

    image = getattr(skimage.data, name)()
    return image[0] if isinstance(image, tuple) else image  # stereo_motorcycle is a pair


def write_photos(root: Path, per_class: int = 300, short_side: int = 96, seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    classes = {}
    for name in PHOTOS:
        picture = Image.fromarray(_photo(name)[..., :3])
        scale = short_side / min(picture.size)
        small = np.asarray(picture.resize((round(picture.width * scale), round(picture.height * scale)), Image.BILINEAR))
        tops = rng.integers(0, small.shape[0] - 32 + 1, per_class)
        lefts = rng.integers(0, small.shape[1] - 32 + 1, per_class)
        classes[name] = [small[t : t + 32, l : l + 32] for t, l in zip(tops, lefts)]
    _save(root, classes)


WRITERS = {"digits": write_digits, "photos": write_photos}


def run(command: list, log: Path) -> subprocess.CompletedProcess:
    with open(log, "a") as f:
        f.write("$ " + " ".join(map(str, command)) + "\n")
    done = subprocess.run([str(c) for c in command], capture_output=True, text=True)
    with open(log, "a") as f:
        f.write(done.stdout[-4000:] + done.stderr[-4000:])
    if done.returncode != 0:
        sys.exit(f"`{' '.join(map(str, command))}` failed (exit {done.returncode}); see {log}")
    return done


def bench(dataset: str, args: argparse.Namespace) -> bool:
    work = args.work / dataset
    images, run_dir, log = work / "images", work / "run", work / "commands.log"
    work.mkdir(parents=True, exist_ok=True)
    if not args.skip_launch:
        WRITERS[dataset](images)
        shutil.rmtree(run_dir, ignore_errors=True)
    options = [*(["--preset", args.preset] if args.preset else []), *(["--steps", str(args.steps)] if args.steps else []),
               *[a for pair in args.overrides or [] for a in ("--set", pair)]]  # fmt: skip
    start = time.monotonic()
    if not args.skip_launch:
        run([*ENSEMBLE, "launch", "--data", images, "--run", run_dir, "--splits", "2", *options], log)
    wall = time.monotonic() - start
    evaluation = json.loads(run([*ENSEMBLE, "evaluate", "--run", run_dir, "--json"], log).stdout)
    status = json.loads(run([*ENSEMBLE, "status", "--run", run_dir, "--json"], log).stdout)
    rows = evaluation["classes"]
    print(f"\n{dataset}: {' '.join(options) or 'defaults'}; launch {wall:.0f} s wall; evaluate {evaluation['seconds']:.0f} s")
    for split in status["splits"]:
        print(f"  split {split['split']}: {split['status']}, seeds {split['seeds']}, best step {split['best_step']}, "
              f"quality {split['quality']['score'] if split['quality'] else None}")  # fmt: skip
    print(f"  {'class':<22} {'accuracy':>8} {'(real)':>7} {'diversity':>9} {'MS-SSIM':>7} {'(real)':>7} {'novelty':>7}  verdict")
    for r in rows:
        print(f"  {r['name'][:22]:<22} {r['accuracy']:>8.1%} {r['real_accuracy']:>7.1%} {r['diversity']:>9.2f} "
              f"{r['ms_ssim']:>7.3f} {r['real_ms_ssim']:>7.3f} {r['novelty'] or 0:>7.2f}  {r['verdict']}")  # fmt: skip
    worst_accuracy = min(r["accuracy"] for r in rows)
    worst_diversity = min(r["diversity"] for r in rows)
    flagged = [r["label"] for r in rows if r["verdict"] != "ok"]
    met = worst_accuracy >= ACCURACY_GOAL and worst_diversity >= DIVERSITY_GOAL and not flagged
    print(f"  worst accuracy {worst_accuracy:.1%} (goal >= {ACCURACY_GOAL:.0%}), worst diversity {worst_diversity:.2f} "
          f"(goal >= {DIVERSITY_GOAL}), flagged {flagged or 'none'}: {'goal met' if met else 'GOAL MISSED'}")  # fmt: skip
    OUT.mkdir(exist_ok=True)
    (OUT / f"real-{dataset}.json").write_text(json.dumps({
        "options": options, "launch_wall_seconds": wall, "classes": rows,
        "splits": [{k: s[k] for k in ("split", "status", "seeds", "best_step", "quality", "flags", "train_seconds")}
                   for s in status["splits"]],
        "date": time.strftime("%Y-%m-%d"), "goal_met": met,
    }, indent=1))  # fmt: skip
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", choices=[*WRITERS, "all"], default="all")
    parser.add_argument("--work", type=Path, default=OUT / "real", help="folder for the images and runs")
    parser.add_argument("--preset")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--set", dest="overrides", action="append", metavar="FIELD=VALUE")
    parser.add_argument("--skip-launch", action="store_true", help="evaluate the runs already in --work")
    args = parser.parse_args()
    datasets = list(WRITERS) if args.dataset == "all" else [args.dataset]
    results = [bench(name, args) for name in datasets]
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
