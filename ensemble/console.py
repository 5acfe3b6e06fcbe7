"""What a terminal shows while long work runs: a launch's progress (a live bar on a terminal,
a line per finished split otherwise) and a bar over the splits for evaluate and report.
The views write to stderr, so that stdout stays for results (and --json). Usage errors, too,
are one line (OneLineErrors)."""
from __future__ import annotations

import time

import click

from ensemble.planning import split_size_text

SMALL_PRESETS = ("cpu-32", "cifar-32")
"""Presets whose one split leaves a GPU mostly idle (bench/README.md, the H200 figures)."""


class LaunchView:
    """Shows a launch's progress: a live bar on a terminal, a line per finished split otherwise."""

    def __init__(self, gpus_asked: bool = False) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.gpus_asked = gpus_asked
        self.progress = None
        self.last_line = 0.0
        self.listing_bar = None
        self.listing_started = None
        self.listed = ""
        """What the listing found, said once training starts (an error before then stays one line)."""

    def __enter__(self) -> "LaunchView":
        return self

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()

    def listing(self, done: int, total: int, files: int) -> None:
        """The coordinator's one listing of an image folder: a bar on a terminal, then a line once training starts."""
        if self.listing_started is None:
            self.listing_started = time.monotonic()
            if self.console.is_terminal:
                from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

                bar = Progress(TextColumn("[bold]listing the data"), BarColumn(), MofNCompleteColumn(),
                               TextColumn("class folders, {task.fields[files]:,} images"), TimeElapsedColumn(),
                               console=self.console, transient=True)  # fmt: skip
                self.listing_bar = (bar, bar.add_task("listing", total=total, files=0))
                bar.start()
        if self.listing_bar is not None:
            self.listing_bar[0].update(self.listing_bar[1], completed=done, files=files)
        if done == total:
            if self.listing_bar is not None:
                self.listing_bar[0].stop()
            self.listed = (f"Data: {files:,} images in {total:,} class folders, listed in "
                           f"{time.monotonic() - self.listing_started:.1f} s")  # fmt: skip
            self.listing_started, self.listing_bar = None, None

    def launched(self, cluster, spec, todo, gpus_per_split) -> None:
        where = "a new local Ray cluster" if cluster.started_here else f"the Ray cluster at {cluster.address}"
        if self.listed:
            self.console.print(self.listed)
        self.console.print(
            f"Training {len(todo)} of {spec.splits} splits of {split_size_text(spec.num_classes, spec.splits)} classes ({spec.preset}, "
            f"{spec.steps} steps of {spec.batch_size}) on {where} "
            f"({cluster.num_cpus:g} CPUs, {cluster.num_gpus:g} GPUs; {gpus_per_split:g} GPU per split)"
        )
        if gpus_per_split == 1 and not self.gpus_asked and spec.preset in SMALL_PRESETS:
            self.console.print(
                f"tip: one {spec.preset} split leaves a GPU mostly idle; --gpus-per-split 0.125 trains 8 on each "
                f"(3.1x the steps per second of one per GPU, cifar-32 on an H200: bench/README.md)"
            )
        self.total_steps = sum(r.total_steps for r in todo)
        self.todo = {r.split for r in todo}
        if self.console.is_terminal:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self.progress = Progress(
                TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"), TimeElapsedColumn(), TimeRemainingColumn(),
                console=self.console,
            )  # fmt: skip
            self.splits_bar = self.progress.add_task("splits", total=len(todo), detail="")
            self.steps_bar = self.progress.add_task("steps ", total=self.total_steps, detail="")
            self.progress.start()

    def retrying(self, record) -> None:
        from ensemble.launching.recipes import describe, parse_recipe

        recipe = describe(parse_recipe(record.recipes[-1] if record.recipes else None))
        self.console.print(f"split {record.split}: {record.flagged}; training it again with a new seed "
                           f"(its seed number {len(record.seeds)}) and a recipe for it ({recipe})")
        self.total_steps += record.total_steps
        if self.progress is not None:
            self.progress.update(self.steps_bar, total=self.total_steps)

    def updated(self, records) -> None:
        mine = [r for r in records if r.split in self.todo]
        done = sum(r.status in ("succeeded", "flagged", "failed") for r in mine)
        running = sum(r.status == "running" for r in mine)
        steps = sum(r.step for r in mine)
        if self.progress is not None:
            self.progress.update(self.splits_bar, completed=done, detail=f"{running} running")
            self.progress.update(self.steps_bar, completed=steps, detail="")
        elif time.monotonic() - self.last_line >= 30:
            self.console.print(f"{done}/{len(mine)} splits done, {running} running, {steps}/{self.total_steps} steps")
            self.last_line = time.monotonic()

    def finished(self, record) -> None:
        if record.status == "failed":
            self.console.print(f"[bold red]split {record.split} failed[/]: {record.error}")
        elif record.status == "flagged":
            self.console.print(f"[bold yellow]split {record.split} flagged[/]: {record.flagged}")
        elif self.progress is None:
            self.console.print(f"split {record.split} succeeded at step {record.step}")


class SplitsProgressView:
    """A progress bar over the splits on a terminal (stderr), nothing otherwise."""

    def __init__(self, quiet: bool, doing: str = "evaluating splits") -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.bar = None
        self.quiet = quiet
        self.doing = doing

    def __enter__(self) -> "SplitsProgressView":
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar[0].stop()

    def progress(self, done: int, total: int, record) -> None:
        if self.quiet or not self.console.is_terminal:
            return
        if self.bar is None:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn, TimeRemainingColumn

            bar = Progress(f"[bold]{self.doing}", BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                           TimeRemainingColumn(), console=self.console)  # fmt: skip
            self.bar = (bar, bar.add_task("splits", total=total))
            bar.start()
        self.bar[0].update(self.bar[1], completed=done)


def counts_text(counts: dict[str, int]) -> str:
    """`3 succeeded, 1 failed`: the statuses that occur."""
    return ", ".join(f"{n} {status}" for status, n in counts.items() if n)


def nothing_to_do(summary, only: tuple[int, ...] | None) -> str:
    """Why a launch trained nothing: the whole run has finished, or the splits --only names have."""
    if only is None:
        return f"Nothing to do: every split of {summary.run_dir} has finished training ({counts_text(summary.counts)})."
    from ensemble.planning import format_split_ids
    from manifests.tables.manifest import Status

    selected = sum(summary.selected.values())
    others = {status: n - summary.selected.get(status, 0) for status, n in summary.counts.items()}
    unfinished = sum(n for status, n in others.items() if status not in Status.FINISHED)
    which = f"split {format_split_ids(only)}, which has" if selected == 1 else f"splits {format_split_ids(only)}, which have"
    line = f"Nothing to do: --only selects {which} finished training ({counts_text(summary.selected)})"
    if sum(others.values()):
        line += f"; the run's other {sum(others.values())} splits: {counts_text(others)}"
    return line + ("; leave --only out to train them." if unfinished else ".")


class OneLineErrors(click.Group):
    """Usage errors (a bad option value, a missing option) in one line, like every other error,
    naming the help to read instead of printing the usage block."""

    def _one_line(self, error: click.UsageError) -> click.UsageError:
        if error.ctx is not None:
            hint = f"(see `{error.ctx.command_path} --help`)"
            error.message = f"{error.message.strip()} {hint}".strip()
            error.ctx = None
        return error

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as error:
            raise self._one_line(error) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as error:
            raise self._one_line(error) from None
