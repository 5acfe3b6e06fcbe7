"""The report's HTML: one page, its styles and its small script inline, images embedded.

Sections: a header (what was trained, how far, how good), the mosaic (one sample per class,
grouped by split, flagged classes outlined, a box to find a class by name), a sortable table
of splits, and per split its samples beside real images, its curves and the paper's two
interpolation figures."""
from __future__ import annotations

import datetime as dt
import os
from html import escape

from ensemble.launching.recipes import describe, parse_recipe
from ensemble.planning import split_size_text
from ensemble.run_spec import RunSpec
from ensemble.status.read import RunStatus
from manifests.tables.manifest import Status

STATUS_COLOURS = {
    Status.SUCCEEDED: "#2e7d32", Status.FLAGGED: "#c62828", Status.FAILED: "#c62828",
    Status.RUNNING: "#1565c0", Status.INTERRUPTED: "#ef6c00", Status.PENDING: "#757575",
}  # fmt: skip

STYLE = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#222;background:#fafafa}
main{max-width:1280px;margin:0 auto;padding:16px 24px 48px}
h1{font-size:22px;margin:8px 0 4px} h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
h3{font-size:15px;margin:0 0 6px}
.facts{display:flex;flex-wrap:wrap;gap:4px 18px;color:#444} .facts b{color:#111}
.badge{display:inline-block;padding:0 7px;border-radius:9px;color:#fff;font-size:12px;margin-right:4px}
.summary{margin:6px 0;color:#333}
#find{font-size:14px;padding:4px 8px;width:280px} #found{color:#555;margin-left:8px}
.mosaic{display:flex;flex-wrap:wrap;gap:6px}
.group{background:#fff;border:1px solid #ddd;border-radius:4px;padding:3px 4px 4px;width:184px}
.group a{font-size:11px;color:#555;text-decoration:none;display:block;margin-bottom:2px}
.tiles{display:grid;grid-template-columns:repeat(5,34px);gap:2px}
.tile{width:34px;height:34px;image-rendering:pixelated;display:block;border:1px solid transparent}
.tile.flag{border-color:#d32f2f;box-shadow:0 0 0 1px #d32f2f}
.tile.none{background:repeating-linear-gradient(45deg,#eee 0 4px,#ddd 4px 8px)}
.tile:hover{transform:scale(2.6);position:relative;z-index:2;box-shadow:0 2px 8px #0006}
.mosaic.searching .tile{opacity:.15} .mosaic.searching .tile.hit{opacity:1;border-color:#1565c0}
table{border-collapse:collapse;background:#fff;font-size:13px;width:100%}
th,td{border:1px solid #e0e0e0;padding:3px 6px;text-align:right;white-space:nowrap}
th{background:#f0f0f0;cursor:pointer;user-select:none;position:sticky;top:0} th:after{content:" \\2195";color:#aaa}
td.l,th.l{text-align:left} td.wrap{white-space:normal;text-align:left;min-width:200px}
.split{background:#fff;border:1px solid #ddd;border-radius:4px;padding:10px 12px;margin:10px 0}
.row{display:flex;flex-wrap:wrap;gap:14px;align-items:flex-start;margin-top:6px}
figure{margin:0} figcaption{font-size:12px;color:#555;margin-bottom:2px}
.px{image-rendering:pixelated}
.classes{font-size:12px;color:#444;margin-top:4px} .classes .flag{color:#c62828;font-weight:600}
.problem{color:#c62828}
.curves{max-width:100%}
"""

SCRIPT = """
(function(){
  const find = document.getElementById('find'), mosaic = document.getElementById('mosaic'),
        found = document.getElementById('found'), tiles = Array.from(mosaic.querySelectorAll('.tile'));
  function search(){
    const q = find.value.trim().toLowerCase();
    let hits = 0;
    for (const t of tiles){ const hit = q !== '' && t.dataset.name.includes(q); t.classList.toggle('hit', hit); hits += hit; }
    mosaic.classList.toggle('searching', q !== '');
    found.textContent = q === '' ? '' : hits + (hits === 1 ? ' class' : ' classes');
    return q;
  }
  find.addEventListener('input', search);
  find.addEventListener('keydown', e => { if (e.key === 'Enter'){ const first = mosaic.querySelector('.tile.hit');
    if (first) first.scrollIntoView({block: 'center'}); } });
  const table = document.getElementById('splits');
  table.querySelectorAll('th').forEach((th, column) => th.addEventListener('click', () => {
    const body = table.tBodies[0], rows = Array.from(body.rows), up = th.dataset.dir !== 'up';
    th.dataset.dir = up ? 'up' : 'down';
    const key = r => { const c = r.cells[column]; return c.dataset.v !== undefined ? c.dataset.v : c.textContent; };
    rows.sort((a, b) => { const x = key(a), y = key(b), nx = parseFloat(x), ny = parseFloat(y);
      const order = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
      return up ? order : -order; });
    rows.forEach(r => body.appendChild(r));
  }));
})();
"""


def render_page(status: RunStatus, spec: RunSpec, pictures: list, checkpoint: str, built: dt.datetime) -> str:
    records = status.records
    seconds = sum(r.train_seconds or 0.0 for r in records)
    counts = "".join(
        f'<span class="badge" style="background:{STATUS_COLOURS.get(s, "#555")}">{n} {s}</span>'
        for s, n in status.counts.items() if n
    )  # fmt: skip
    flagged = sum(len(p.flags) for p in pictures)
    head = f"""
<h1>acgan-ensemble report</h1>
<div class="facts"><span>run <b>{escape(_last_part(str(status.run_dir)))}</b></span><span>data <b>{escape(_last_part(spec.data))}</b></span>
<span>preset <b>{escape(spec.preset)}</b></span><span><b>{spec.splits}</b> splits of <b>{split_size_text(spec.num_classes, spec.splits)}</b> classes</span>
<span><b>{spec.steps:,}</b> steps of <b>{spec.batch_size}</b> per split</span>
<span>training time <b>{_duration(seconds)}</b> (all splits)</span>
<span>pictures from the <b>{checkpoint}</b> generator where there is one</span>
<span>built {built.strftime("%Y-%m-%d %H:%M UTC")}</span></div>
<div class="summary">{counts} {escape(status.summary_line())}</div>
<div class="summary">{flagged} class{"" if flagged == 1 else "es"} flagged
({_whose_verdicts(status, len(records))}),
outlined in red below.</div>"""  # fmt: skip
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>acgan-ensemble report: {escape(_last_part(str(status.run_dir)))}</title><style>{STYLE}</style></head>
<body><main>{head}
<h2>Every class, one sample each</h2>
<p><input id="find" type="search" placeholder="Find a class by name or label" aria-label="Find a class">
<span id="found"></span></p>
<div class="mosaic" id="mosaic">{"".join(_group(p) for p in pictures)}</div>
<h2>Splits</h2>
{_table(pictures)}
<h2>Each split</h2>
{"".join(_section(p) for p in pictures)}
</main><script>{SCRIPT}</script></body></html>
"""
    return _without_machine_paths(page, str(status.run_dir), spec.data)


def _last_part(path: str) -> str:
    """A run or data folder as the page names it: its own name, not where it lies."""
    return path.rstrip("/").rsplit("/", 1)[-1] or path


def _without_machine_paths(page: str, run_dir: str, data: str) -> str:
    """A report is made to be passed around: the run's and the data's locations (a home folder,
    a bucket's keys), also inside the errors and warnings it quotes, become their names."""
    local = [os.path.realpath(p) for p in (run_dir, data) if "://" not in p]  # errors may name resolved paths
    for full in {run_dir, data, *local} - {""}:
        if "/" in full:  # a built-in dataset's name stays as it is
            page = page.replace(escape(full.rstrip("/")), escape(_last_part(full)))
    return page


def _whose_verdicts(status: RunStatus, splits: int) -> str:
    evaluated = len(status.evaluated or {})
    if evaluated == 0:
        return "the quality guard's verdicts; `ensemble evaluate` gives the paper's measures"
    if evaluated == splits:
        return "ensemble evaluate's verdicts"
    return f"ensemble evaluate's verdicts for the {evaluated} split(s) it scored, the quality guard's for the others"


def _group(shown) -> str:
    record = shown.record
    tiles = []
    for local, (label, name, class_id) in enumerate(zip(record.classes, record.class_names, record.class_ids)):
        verdict = shown.flags.get(label)
        title = f"{label} {name}" + (f" ({class_id})" if class_id != name else "") + f", split {record.split}"
        title += f": {verdict}" if verdict else ""
        search = escape(f"{label} {name} {class_id}".lower())
        if local < len(shown.tiles):
            tiles.append(f'<img class="tile{" flag" if verdict else ""}" src="{shown.tiles[local].uri}" alt="{escape(name)}" '
                         f'title="{escape(title)}" data-name="{search}">')  # fmt: skip
        else:
            tiles.append(f'<div class="tile none" title="{escape(title)}: {escape(shown.problem or "")}" '
                         f'data-name="{search}"></div>')  # fmt: skip
    return (f'<div class="group"><a href="#split-{record.split}">split {record.split} · {escape(record.status)}</a>'
            f'<div class="tiles">{"".join(tiles)}</div></div>')  # fmt: skip


def _table(pictures: list) -> str:
    head = ("<tr><th>split</th><th class=l>status</th><th>step</th><th>attempt</th><th class=l>device</th>"
            "<th>loss D</th><th>loss G</th><th>D class acc.</th><th>guard quality</th><th>flagged</th>"
            "<th>train time</th><th class=l>first class</th></tr>")  # fmt: skip
    rows = []
    for shown in pictures:
        r = shown.record
        rows.append(
            f'<tr><td><a href="#split-{r.split}">{r.split}</a></td>'
            f'<td class=l style="color:{STATUS_COLOURS.get(r.status, "#222")}">{escape(r.status)}</td>'
            f"<td data-v={r.step}>{r.step:,}/{r.total_steps:,}</td><td>{r.attempt}</td><td class=l>{escape(r.device or '-')}</td>"
            f"{_number(r.loss_d)}{_number(r.loss_g)}{_number(r.class_accuracy)}{_number(r.quality)}"
            f"<td>{len(shown.flags)}</td><td data-v={r.train_seconds or 0}>{_duration(r.train_seconds or 0)}</td>"
            f"<td class=l>{escape(r.class_names[0])}</td></tr>"
        )  # fmt: skip
    return f'<table id="splits"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _section(shown) -> str:
    r = shown.record
    names = ", ".join(
        f'<span class="flag" title="{escape(shown.flags[label])}">{label} {escape(name)} ({escape(shown.flags[label])})</span>'
        if label in shown.flags else f"{label} {escape(name)}"
        for label, name in zip(r.classes, r.class_names)
    )  # fmt: skip
    facts = f"{escape(r.status)}, step {r.step:,} of {r.total_steps:,}, attempt {r.attempt}"
    if len(r.seeds) > 1:  # quality retries, each with the recipe that answered what failed
        retries = [describe(parse_recipe(text)) for text in r.recipes[1:]] or ["a new seed"] * (len(r.seeds) - 1)
        facts += "; quality retries: " + "; ".join(f"{i} ({escape(text)})" for i, text in enumerate(retries, 1))
    if shown.step is not None:
        facts += f"; pictures from its {shown.generator} generator (step {shown.step:,})"
    figures = []
    if shown.samples:
        figures.append(_figure("samples: a row per class", shown.samples))
    if shown.real:
        figures.append(_figure("real images", shown.real))
    if shown.within_class:
        figures.append(_figure("noise interpolated within a class", shown.within_class))
    if shown.across_classes:
        figures.append(_figure("fixed noise (rows) across the classes (columns)", shown.across_classes))
    problem = f'<div class="problem">{escape(shown.problem)}</div>' if shown.problem else ""
    curves = (f'<figure><figcaption>curves (history.parquet)</figcaption><img class="curves" src="{shown.curves.uri}" '
              f'width="{shown.curves.width}" height="{shown.curves.height}" alt="training curves of split {r.split}">'
              f'</figure>' if shown.curves else "")  # fmt: skip
    return (f'<section class="split" id="split-{r.split}"><h3>split {r.split}</h3><div class="facts">{facts}</div>'
            f'<div class="classes">{names}</div>{problem}<div class="row">{"".join(figures)}</div>{curves}</section>')  # fmt: skip


def _figure(caption: str, picture) -> str:
    # Small images (32 px a side) are shown at twice their pixels, kept sharp.
    scale = 2 if picture.width < 400 else 1
    return (f'<figure><figcaption>{escape(caption)}</figcaption><img class="px" src="{picture.uri}" '
            f'width="{picture.width * scale}" height="{picture.height * scale}" alt="{escape(caption)}"></figure>')  # fmt: skip


def _number(value: float | None) -> str:
    return "<td data-v=-1>-</td>" if value is None else f"<td>{value:.3f}</td>"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
