"""`ensemble report` on real runs, checked in a real headless Chromium: every image loaded, no
script error, the mosaic findable by name and the table sortable; a screenshot of each page is
kept in test-artifacts/ for people to look at."""
from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.browser import HeadlessChromium, chromium_path
from tests.helpers import invoke, rows_of

pytestmark = [pytest.mark.usefixtures("ray_cluster"), pytest.mark.browser]

ARTIFACTS = Path(__file__).parents[1] / "test-artifacts"
# Enough steps for the guard to checkpoint twice and keep a best generator.
STEPS = ["--steps", "40", "--batch-size", "8", "--checkpoint-every", "20", "--gpus-per-split", "0"]


@pytest.fixture(scope="module")
def builtin_run(tmp_path_factory) -> Path:
    """Splits 41 and 42 of a 100-split built-in run trained (with the guard), the rest pending;
    split 41 evaluated."""
    run = tmp_path_factory.mktemp("report") / "run"
    assert invoke("launch", "--splits", "100", "--only", "41,42", "--run", run, *STEPS).exit_code == 0
    assert invoke("evaluate", "--run", run, "--only", "41", "--samples", "8").exit_code == 0
    return run


def page_facts(browser: HeadlessChromium) -> dict:
    return browser.evaluate("""({
        images: document.images.length,
        broken: Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt),
        tiles: document.querySelectorAll('img.tile').length,
        placeholders: document.querySelectorAll('div.tile.none').length,
        flaggedTiles: document.querySelectorAll('.tile.flag').length,
        sections: document.querySelectorAll('section.split').length,
        curves: document.querySelectorAll('img.curves').length,
        header: document.querySelector('.summary').textContent,
    })""")


def find(browser: HeadlessChromium, text: str) -> dict:
    """Type into the find box as a person would; what the mosaic and the counter then show."""
    return browser.evaluate(f"""(() => {{
        const box = document.getElementById('find');
        box.value = {json.dumps(text)};
        box.dispatchEvent(new Event('input'));
        return {{hits: Array.from(document.querySelectorAll('.tile.hit')).map(t => t.title),
                 found: document.getElementById('found').textContent}};
    }})()""")


def open_report(path: Path, screenshot: str) -> tuple[HeadlessChromium, dict]:
    browser = HeadlessChromium()
    browser.open(path.as_uri())
    facts = page_facts(browser)
    ARTIFACTS.mkdir(exist_ok=True)
    browser.screenshot(ARTIFACTS / screenshot)
    return browser, facts


def test_the_report_of_a_builtin_run_in_headless_chromium(builtin_run, tmp_path):
    chromium_path()  # skipped (or failed, in CI) before the work when there is no browser
    result = invoke("report", "--run", builtin_run, "--json")
    assert result.exit_code == 0, result.output
    written = json.loads(result.output)
    page = Path(written["report"])
    assert page == builtin_run / "report.html" and written["splits_drawn"] == 2
    assert page.stat().st_size == written["bytes"]
    # Outlined: evaluate's verdicts for split 41, which it scored; the guard's for split 42.
    evaluated = json.loads(invoke("status", "--run", builtin_run, "--json").output)["splits"][41]["quality"]
    flagged = len(evaluated["flagged"]) + len(rows_of(builtin_run)[42].flags)

    browser, facts = open_report(page, "report-builtin.png")
    with browser:
        assert facts["broken"] == [] and browser.errors() == []
        # 20 classes drawn, 980 shown as not trained yet; a section per split, curves for the two trained.
        assert (facts["tiles"], facts["placeholders"], facts["sections"], facts["curves"]) == (20, 980, 100, 2)
        assert facts["images"] == 20 + 2 * 5  # tiles, and per trained split: 4 grids and its curves
        assert facts["flaggedTiles"] == flagged  # evaluate's verdicts for 41, the guard's for 42
        assert "98 pending" in facts["header"] and "2 " in facts["header"]

        by_name = find(browser, "Violet Bar on Maroon Window")
        assert by_name["found"] == "1 class" and by_name["hits"][0].startswith("417 violet bar on maroon window, split 41")
        assert find(browser, "41")["hits"]  # labels match too: 41 and 410-419
        assert find(browser, "no class has this name")["found"] == "0 classes"

        # The table sorts by a column when its header is clicked, descending on the second click.
        order = browser.evaluate("""(() => {
            const th = document.querySelectorAll('#splits th')[0];
            th.click(); th.click();
            return Array.from(document.querySelectorAll('#splits tbody tr')).slice(0, 3).map(r => r.cells[0].textContent);
        })()""")
        assert order == ["99", "98", "97"]
        assert browser.errors() == []

        # The mosaic's tile of 417 is `ensemble sample --label 417 --n 1 --seed 0` (WebP: near, not equal).
        tile = browser.evaluate("document.querySelector('img.tile[data-name^=\"417 \"]').src")
    sample = invoke("sample", "--label", "417", "--run", builtin_run, "--n", "1", "--out", tmp_path / "one")
    assert sample.exit_code == 0, sample.output
    (file,) = (tmp_path / "one").iterdir()
    shown = torch.from_numpy(np.array(Image.open(io.BytesIO(base64.b64decode(tile.split(",", 1)[1]))).convert("RGB")))
    sampled = torch.from_numpy(np.array(Image.open(file).convert("RGB")))
    assert (shown.float() - sampled.float()).abs().mean() < 6  # another class's image differs by ~40


def test_a_report_is_rewritten_in_place_and_names_its_generators(builtin_run, tmp_path):
    """The same --out twice: the second report (of the latest generators) replaces the first
    (of the best) whole, in place, with nothing else left in the folder."""
    out = tmp_path / "report.html"
    assert invoke("report", "--run", builtin_run, "--out", out).exit_code == 0
    first = out.read_text()
    assert first.count("pictures from its best generator") == 2
    inode = out.stat().st_ino
    result = invoke("report", "--run", builtin_run, "--out", out, "--checkpoint", "latest")
    assert result.exit_code == 0, result.output
    assert re.search(r"Report of 2 split\(s\) written to .*report\.html \(\d+\.\d MB, \d+ s\)", result.output)
    text = out.read_text()
    assert text != first and "pictures from its best generator" not in text
    rows = rows_of(builtin_run)  # 40 steps, or 60 for a split a quality retry trained longer
    assert text.count("pictures from its latest generator (step ") == 2
    assert all(f"pictures from its latest generator (step {rows[s].checkpoint_step})" in text for s in (41, 42))
    assert "no checkpoint yet (pending)" in text
    # Made to be passed around: the run is named, not where it lies on this machine.
    assert str(builtin_run) not in text and f"run <b>{builtin_run.name}</b>" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report.html"]  # no temporary file left beside it
    assert out.stat().st_ino != inode  # replaced by a rename, never rewritten where a reader has it open
