"""The `ensemble` command: a thin click layer over ensemble/.

`ensemble --help` and `ensemble status` import neither torch nor Ray: each command imports
what it needs when it runs.
"""
from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path

import click

from ensemble.console import OneLineErrors  # click and rich's names only: light
# configs only: no torch, ~30 ms
from workers.presets import DEFAULT_PRESET, PAPER_CLASSES_PER_SPLIT, PRESETS, REAL_IMAGES, get_preset

PRESET_NAMES = tuple(PRESETS)
def _preset_defaults(field: str) -> str:
    """`450 for cpu-32, 50000 for the others`: a recipe field of every preset, for --help."""
    groups: dict[object, list[str]] = {}
    for name in PRESETS:
        groups.setdefault(getattr(get_preset(name), field), []).append(name)
    ordered = sorted(groups.items(), key=lambda item: len(item[1]))
    parts = [f"{value} for {', '.join(names)}" for value, names in ordered]
    if len(ordered) > 1:
        parts[-1] = f"{ordered[-1][0]} for the others"
    return ", ".join(parts)


RUN_OPTION = click.option(
    "--run",
    "run_dir",
    type=str,  # not click.Path: it would fold s3://bucket into s3:/bucket
    default="ensemble-run",
    show_default=True,
    envvar="ENSEMBLE_RUN",
    metavar="DIR|URI",
    help="Run directory (manifest, spec, checkpoints): a local folder or s3://bucket/prefix (any URI pyarrow.fs "
    "opens: gs://, hdfs://). Env: ENSEMBLE_RUN.",
)

CHECKPOINT_OPTION = click.option(
    "--checkpoint", type=click.Choice(("best", "latest")), default="best", show_default=True,
    help="Each split's best generator by the quality guard's score, or its latest one. A split "
    "trained without the guard has only the latest.",
)


@contextlib.contextmanager
def user_errors():
    """Domain errors become one line on stderr and exit code 1 (130 for Ctrl-C), no traceback."""
    from ensemble.errors import Interrupted
    from manifests.errors import UserError

    try:
        yield
    except Interrupted as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(130)
    except UserError as exc:
        raise click.ClickException(str(exc)) from None


def _split_ids(ctx, param, value: str | None) -> tuple[int, ...] | None:
    """--only's callback: `0-9,41` -> (0, ..., 9, 41), a bad list refused in one line."""
    from ensemble.planning import parse_split_ids

    with user_errors():
        return parse_split_ids(value)


@click.group(cls=OneLineErrors, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="acgan-ensemble")
def main() -> None:
    """Train an ensemble of class-split AC-GANs on Ray, track it, sample it by label.

    \b
    Quick start (built-in data, local Ray cluster):
      ensemble launch --splits 100     # 100 AC-GANs of 10 classes each
      ensemble status                  # where every split stands
      ensemble sample --label 417      # images of class 417, from split 41
      ensemble report                  # one HTML page of the whole run
      ensemble serve                   # samples over HTTP, by label
      ensemble export --out bundle/    # the generators, for ensemble.load_bundle()
    """


@main.command()
@click.option("--splits", type=int, help=f"Number of splits (of consecutive classes, as equal as can be). [default: one per {PAPER_CLASSES_PER_SPLIT} "
              f"classes (100 for 1000); per {REAL_IMAGES.classes_per_split} for --data DIR when --preset is left out]")
@click.option("--data", help="`builtin`; an image folder with one subfolder per class (ImageNet's train/); "
              "or cifar10:ROOT, cifar100:ROOT, mnist:ROOT for torchvision's files under ROOT. [default: builtin]")
@RUN_OPTION
@click.option("--preset", type=click.Choice(PRESET_NAMES),
              help="Model and recipe: paper-128, paper-64 (the paper's ImageNet models), cifar-32 (its CIFAR-10 "
              f"model), cpu-32 (small, for CPUs). [default: {DEFAULT_PRESET}]")
@click.option("--set", "overrides", multiple=True, metavar="FIELD=VALUE",
              help="Change one model field of the preset, e.g. --set loss=hinge --set g_ema=0.999 "
              "(fields: docs/models.md). Repeatable.")
@click.option("--steps", type=int, help=f"Training steps per split. [default: the preset's: {_preset_defaults('steps')}; "
              f"{REAL_IMAGES.steps} for --data other than builtin when --preset is left out]")
@click.option("--batch-size", type=int, help=f"Images per step. [default: the preset's: {_preset_defaults('batch_size')}]")
@click.option("--seed", type=int, help="Run seed; each split derives its own. [default: 0]")
@click.option("--checkpoint-every", type=int, help=f"Steps between checkpoints. [default: the preset's: {_preset_defaults('checkpoint_every')}]")
@click.option("--address", help="Existing Ray cluster to use (or RAY_ADDRESS). [default: start a local one]")
@click.option("--gpus-per-split", type=float, help="GPUs per split, fractions allowed. [default: 1 on a GPU cluster, else 0]")
@click.option("--cpus-per-split", type=float, default=1.0, show_default=True, help="CPUs per split.")
@click.option("--only", callback=_split_ids,
              help="Train just these splits, e.g. `41` or `0-9,41`; the rest stay pending.")
@click.option("--quality-retries", type=int,
              help="Fresh seeds a split may be retrained with when its best generator fails a class "
              "(collapsed or unrecognisable). On a relaunch, flagged splits get this many more. [default: 2]")
@click.option("--reindex", is_flag=True,
              help="On a relaunch whose image folder's files changed since the run listed them (a relaunch lists "
              "it again and says what changed): train the unfinished splits on the files as they are now.")
@click.option("--guard/--no-guard", default=None,
              help="Score each checkpoint with the split's real-data classifier, keep the best generator, "
              "flag failing classes. [default: on]")
def launch(run_dir: str, **options) -> None:
    """Train every unfinished split of a run, one Ray task per split.

    A relaunch on the same --run skips succeeded splits and resumes the others from their
    latest checkpoints; options left out keep the values the run was launched with.

    \b
    Examples:
      ensemble launch --splits 100
      ensemble launch --splits 100 --only 41 --steps 100   # one split first
      ensemble launch --data /datasets/imagenet/train --preset paper-128 --run runs/in1k
      ensemble launch --data cifar10:~/torchvision-data --preset cifar-32 --splits 1 --set d_spectral_norm=true
      ensemble launch --address ray://head:10001 --run /shared/runs/in1k
      ensemble launch --run runs/in1k --quality-retries 2   # flagged splits: 2 more seeds
    """
    from ensemble.console import LaunchView, counts_text, nothing_to_do
    from ensemble.launching.coordinator import LaunchRequest, launch as run_launch
    from ensemble.run_spec import parse_overrides

    with user_errors():
        options["overrides"] = parse_overrides(options["overrides"])
        request = LaunchRequest(run_dir=run_dir, **options)
        with LaunchView(gpus_asked=options["gpus_per_split"] is not None) as view:
            summary = run_launch(request, view)
    counts = counts_text(summary.counts)
    if summary.submitted == 0:
        click.echo(nothing_to_do(summary, options["only"]))
    else:
        click.echo(f"Done in {summary.wall_seconds:.0f} s: {counts}. Manifest: {summary.run_dir / 'manifest.parquet'}")
    if summary.counts.get("flagged"):
        click.echo(
            f"{summary.counts['flagged']} split(s) flagged: their best generator fails some classes (see "
            f"`ensemble status`); relaunch with --quality-retries N to train them again with new seeds.", err=True
        )
    if summary.counts.get("failed"):
        click.echo("Some splits failed; see `ensemble status`, then relaunch to retry them.", err=True)
        sys.exit(1)


@main.command()
@RUN_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (key `splits`: one row per split).")
@click.option("--summary", is_flag=True, help="Print only the line of counts by status.")
@click.option("--watch", is_flag=True, help="Redraw every --interval seconds until Ctrl-C, or until no launch "
              "holds the run and nothing runs. In place on a terminal; a new block each time otherwise.")
@click.option("--interval", type=float, default=2.0, metavar="S", show_default=True, help="Seconds between redraws with --watch.")
def status(run_dir: str, as_json: bool, summary: bool, watch: bool, interval: float) -> None:
    """Show where every split of a run stands.

    \b
    Examples:
      ensemble status
      ensemble status --watch --interval 5
      ensemble status --run runs/in1k --json | jq '.splits[] | select(.status=="failed")'
    """
    from ensemble.status.read import read_status

    if watch:
        from ensemble.status.watch import watch_status

        def draw(run_status) -> str:
            if as_json:
                return json.dumps(run_status.to_json())
            lines = [] if summary else _status_table_lines(run_status)
            return "\n".join([*lines, run_status.summary_line()])

        with user_errors():
            sys.exit(watch_status(run_dir, interval, draw, in_place=False if as_json else None))
    with user_errors():
        run_status = read_status(run_dir)
    if as_json:
        click.echo(json.dumps(run_status.to_json()))
        return
    if not summary:
        _print_status_table(run_status)
    click.echo(run_status.summary_line())


def _print_status_table(run_status) -> None:
    # click.echo drops the colour codes when stdout is not a terminal.
    click.echo("\n".join(_status_table_lines(run_status)))


def _status_table_lines(run_status) -> list[str]:
    from ensemble.status.table import table_lines

    style = click.style if sys.stdout.isatty() else (lambda text, **_: text)
    return table_lines(run_status.records, style, run_status.evaluated)


@main.command()
@RUN_OPTION
@click.option("--only", callback=_split_ids,
              help="Evaluate just these splits, e.g. `41` or `0-9,41`; the other rows of evaluation.parquet stay.")
@click.option("--samples", type=int, default=100, show_default=True, help="Generated images per class.")
@CHECKPOINT_OPTION
@click.option("--classifier-weights", type=click.Path(path_type=str),
              help="A torchvision Inception-v3 or ResNet-50 state dict file you have (never downloaded): adds the "
              "paper's 1000-way accuracy over the global labels, for ImageNet runs.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object (key `classes`: one row per class).")
def evaluate(run_dir: str, only, samples: int, checkpoint: str, classifier_weights: str | None, as_json: bool) -> None:
    """Score every class of every finished split, offline, with the paper's measures.

    Per class: accuracy of the split's own real-data classifier on generated samples (and on
    held-out real images), MS-SSIM of random same-class pairs (generated and real), diversity
    (generated spread / real spread), distinctness (the share of real images with a sample nearby),
    distance to the nearest training image, and FID / KID
    in the classifier's feature space. Writes RUN/evaluation.parquet; `ensemble status` then
    shows how many classes of each split pass.

    \b
    Examples:
      ensemble evaluate
      ensemble evaluate --only 41 --samples 500 --checkpoint latest
      ensemble evaluate --json | jq '.classes[] | select(.verdict != "ok")'
      ensemble evaluate --run runs/in1k --classifier-weights ~/weights/inception_v3.pth
    """
    from ensemble.evaluate import evaluate_run

    from ensemble.console import SplitsProgressView

    with user_errors(), SplitsProgressView(quiet=as_json) as view:
        evaluation = evaluate_run(run_dir, only, samples, checkpoint, classifier_weights, progress=view.progress)
    if as_json:
        click.echo(json.dumps({"run": str(run_dir), "seconds": evaluation.seconds, "counts": evaluation.counts,
                               "classes": evaluation.rows}))  # fmt: skip
        return
    counts = ", ".join(f"{n} {verdict}" for verdict, n in evaluation.counts.items() if n)
    click.echo(f"Evaluated {len(evaluation.rows)} classes of {evaluation.splits} splits in {evaluation.seconds:.0f} s: {counts}. "
               f"Results: {evaluation.path}")  # fmt: skip
    flagged = evaluation.flagged()
    for row in flagged[:20]:
        click.echo(f"  {row['label']} ({row['name']}), split {row['split']}: {row['verdict']} - accuracy "
                   f"{row['accuracy']:.2f} (real {_maybe(row['real_accuracy'])}), MS-SSIM {_maybe(row['ms_ssim'])} "
                   f"(real {_maybe(row['real_ms_ssim'])}), diversity {row['diversity']:.2f}, "
                   f"distinctness {_maybe(row['distinctness'])}")  # fmt: skip
    if len(flagged) > 20:
        click.echo(f"  ... and {len(flagged) - 20} more (ensemble evaluate --json)")


@main.command()
@RUN_OPTION
@click.option("--out", metavar="FILE.html", help="The HTML file to write. [default: RUN/report.html; ./report.html for a run on object storage]")
@CHECKPOINT_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object: the page's path, size and build time.")
def report(run_dir: str, out: str | None, checkpoint: str, as_json: bool) -> None:
    """Write one HTML page of the whole run, to open in any browser, offline.

    It shows what was trained and how far; one sample of every class, grouped by split, with a
    box to find a class by name and the flagged classes outlined; a sortable table of splits;
    and per split its samples beside real images, its training curves and the paper's two
    interpolation figures. Every image is embedded: the page is one file, to keep or share.
    A running launch may be reported on.

    \b
    Examples:
      ensemble report
      ensemble report --run runs/in1k --out ~/in1k.html --checkpoint latest
      ensemble report --run s3://bucket/runs/in1k      # writes ./report.html
    """
    from ensemble.report.build import build_report

    from ensemble.console import SplitsProgressView

    with user_errors(), SplitsProgressView(quiet=as_json, doing="drawing splits") as view:
        result = build_report(run_dir, out, checkpoint, progress=view.progress)
    if as_json:
        click.echo(json.dumps({"report": str(result.path), "bytes": result.bytes, "seconds": result.seconds,
                               "splits_drawn": result.drawn}))  # fmt: skip
        return
    click.echo(f"Report of {result.drawn} split(s) written to {result.path} ({result.bytes / 1e6:.1f} MB, "
               f"{result.seconds:.0f} s); open it in a browser.")  # fmt: skip


@main.command()
@RUN_OPTION
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on; 0.0.0.0 exposes it to the network.")
@click.option("--port", type=int, default=8000, show_default=True, help="HTTP port.")
@click.option("--replicas", type=int, default=1, show_default=True, help="Generator replicas (Ray actors).")
@click.option("--models-per-replica", type=int, default=8, show_default=True,
              help="Generators one replica keeps loaded (least recently used out first).")
@click.option("--gpus-per-replica", type=float, default=0.0, show_default=True, help="GPUs per replica, fractions allowed.")
@CHECKPOINT_OPTION
@click.option("--address", help="Existing Ray cluster to deploy on (or RAY_ADDRESS). [default: start a local one]")
@click.option("--deploy-timeout", type=float, default=300.0, show_default=True, metavar="SECONDS",
              help="Give up (and delete what was deployed) when the replicas are not ready in this time.")
def serve(run_dir: str, host: str, port: int, replicas: int, models_per_replica: int, gpus_per_replica: float,
          checkpoint: str, address: str | None, deploy_timeout: float) -> None:  # fmt: skip
    """Serve samples over HTTP with Ray Serve, each label routed to its split's generator.

    Runs until Ctrl-C or SIGTERM. A checkpoint written by a launch still running is served
    within seconds.

    \b
    API (OpenAPI at /docs):
      GET  /v1/classes                                 every label, name, class id, split, step served
      GET  /v1/sample?label=417&n=16&seed=0&format=png one PNG grid (format=json: base64 PNGs + details)
      POST /v1/samples {"labels": [417, "balloon"], "n": 4, "seed": 0}
      GET  /healthz, and / : a gallery page

    \b
    Examples:
      ensemble serve
      curl -o 417.png 'http://127.0.0.1:8000/v1/sample?label=417&n=16'
      ensemble serve --run s3://bucket/runs/in1k --address HEAD:6379 --replicas 4 --gpus-per-replica 0.25
    """
    from ensemble.serve.command import serve_forever

    with user_errors():
        serve_forever(run_dir, host, port, address, deploy_timeout=deploy_timeout, checkpoint=checkpoint,
                      replicas=replicas, models_per_replica=models_per_replica, gpus_per_replica=gpus_per_replica)  # fmt: skip


def _maybe(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


@main.command()
@click.option("--label", required=True, help="Class index (e.g. 417) or class name.")
@RUN_OPTION
@click.option("--n", "count", type=int, default=16, show_default=True, help="Number of images.")
@click.option("--seed", type=int, default=0, show_default=True, help="Noise seed; the same seed gives the same images.")
@click.option("--out", type=click.Path(path_type=Path), help="A .png path for one grid, or a folder for one PNG per image. [default: samples/label-L.png]")
@click.option("--scale", type=int, default=1, show_default=True, help="Enlarge each pixel this many times.")
@CHECKPOINT_OPTION
def sample(label: str, run_dir: str, count: int, seed: int, out: Path | None, scale: int, checkpoint: str) -> None:
    """Write images of one class, made by the split's generator that owns it.

    \b
    Examples:
      ensemble sample --label 417
      ensemble sample --label "violet bar on maroon window" --n 64 --scale 4
      ensemble sample --label 417 --out samples/417/ --n 100
    """
    from ensemble.sample import sample_label

    with user_errors():
        result = sample_label(run_dir, label, count, seed, out, scale, checkpoint)
    route = result.route
    where = result.paths[0] if len(result.paths) == 1 else f"{len(result.paths)} files in {result.paths[0].parent}"
    click.echo(
        f"label {route.global_label} ({route.class_name}) -> split {route.record.split}, local class "
        f"{route.local_label}, {result.checkpoint_kind} checkpoint, step {result.checkpoint_step}: wrote {where}"
    )


@main.command()
@RUN_OPTION
@click.option("--out", required=True, metavar="DIR", help="A new or empty folder to write the bundle to.")
@CHECKPOINT_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print bundle.json's content instead of a line.")
def export(run_dir: str, out: str, checkpoint: str, as_json: bool) -> None:
    """Write a trained ensemble as one folder that samples without Ray, pyarrow or the run:
    every split's generator (safetensors + JSON), the label-to-split table and a README.
    Read it with `ensemble.load_bundle(DIR)` (docs/api.md).

    \b
    Examples:
      ensemble export --out exported/demo
      ensemble export --run s3://bucket/runs/in1k --out in1k-bundle --checkpoint latest
    """
    from ensemble.api import open as open_run

    with user_errors():
        document = open_run(run_dir).export(out, checkpoint)
    if as_json:
        click.echo(json.dumps(document))
        return
    exported = sum(s["file"] is not None for s in document["splits"])
    click.echo(f"Exported {exported} of {len(document['splits'])} splits' {checkpoint} generators to {out}.")
    for key, what in (("without_generator", "had no generator (not sampled)"), ("unfinished", "had not finished training"),
                      ("flagged_classes", "classes were flagged by the quality guard")):  # fmt: skip
        if document[key]:
            click.echo(f"Note: {len(document[key])} {'split(s) ' if key != 'flagged_classes' else ''}{what}; "
                       f"recorded in {Path(out) / 'bundle.json'}.", err=True)  # fmt: skip


if __name__ == "__main__":
    main()
