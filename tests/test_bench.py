"""The benchmark scripts still run (their figures live in bench/README.md, not in tests)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration  # each runs a benchmark script as a process

BENCH = Path(__file__).parents[1] / "bench"


def run(script: str, *args: str) -> str:
    out = subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_train_step_bench_prints_a_row_per_loop_with_its_ratio():
    table = run("train_step.py", "--presets", "cpu-32", "--rounds", "1", "--steps", "1", "--warmup", "0",
                "--images", "64")  # fmt: skip
    rows = {line.split()[1] + " " + line.split()[2]: line for line in table.splitlines() if line.startswith("cpu-32")}
    assert set(rows) == {"public port", "ours fp32", "ours bf16"}
    assert re.search(r" 1\.00x ", rows["public port"])
    assert all(re.search(r" \d+\.\d\dx ", row) for row in rows.values())


def test_status_bench_times_each_command_on_a_made_up_manifest():
    table = run("status_scale.py", "--splits", "20", "--repeats", "1")
    for measure in ("ensemble status", "ensemble status --summary", "ensemble status --json"):
        # each row: splits, then the measure in a 34-wide column, then the median
        (line,) = [line for line in table.splitlines() if line.split()[0] == "20" and line[9:43].strip() == measure]
        seconds = float(re.search(r"(\d+\.\d+) s", line)[1])
        assert 0.05 < seconds < 60, line  # a process that imports and reads: measured, not made up
    (route,) = [line for line in table.splitlines() if "route one label" in line]
    by_index, by_name = map(float, re.search(r"([\d.]+) / ([\d.]+) us", route).groups())
    assert 0 < by_index < 10_000 and 0 < by_name < 10_000, route


def test_data_index_bench_lists_a_made_up_imagenet_folder_and_measures_a_split(tmp_path):
    out = run("data_index.py", "--classes", "20", "--sizes", "3", "--parts", "local,decode", "--scratch", str(tmp_path))
    listing = re.search(r"local disk, 60 files: coordinator listing ([\d.]+) s .* index ([\d.]+) MB", out)
    split = re.search(r"local disk, 60 files: per split (\d+) ms .* its 30 file names ([\d.]+) MB", out)
    assert listing and split, out
    assert float(listing[1]) < 60 and float(listing[2]) < 1 and int(split[1]) < 10_000
    decoded = re.findall(r"decode to (\d+) px: (\d+) images/s per core; cache ([\d.]+) KiB per image", out)
    assert [(size, cache) for size, _, cache in decoded] == [("32", "3.0"), ("64", "12.0"), ("128", "48.0")], out
    assert all(int(rate) > 0 for _, rate, _ in decoded)  # 3 bytes a pixel: the cache holds exactly the pixels


def test_state_format_bench_times_both_formats():
    table = run("state_format.py", "--presets", "cpu-32", "--rounds", "1")
    rows = [line for line in table.splitlines() if line.startswith("| cpu-32")]
    assert [row.split("|")[2].strip() for row in rows] == ["torch.save (before)", "safetensors + JSON"]
    assert all(re.search(r"\| [\d.]+ MB \| \d+ ms \| \d+ ms \|$", row) for row in rows)


def test_moto_list_bench_times_a_list_on_a_filled_bucket():
    table = run("moto_list.py", "--sizes", "2")
    (row,) = [line for line in table.splitlines() if line.startswith("| 2,000 |")]
    folder_ms, page_ms = (float(x) for x in re.findall(r"\| (\d+) ms", row))
    assert 0 < folder_ms < 10_000 and 0 < page_ms < 10_000, row
