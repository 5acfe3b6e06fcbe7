"""acgan-ensemble as a library, and the coordinator's side of the `ensemble` commands.

The public API is what this package exposes (docs/api.md):

    ensemble.open(run) -> Run       read a run: status(), classes(), sample(), generator(), evaluation()
    ensemble.launch(run, **options) train it, as `ensemble launch` does, and return the Run
    ensemble.load_bundle(folder)    a run exported with `ensemble export`: sample() and generator() with
                                    torch and safetensors alone
    ensemble.EnsembleError          every error meant for the user, with the CLI's one-line message

They are loaded on first use, so `import ensemble` (and the CLI's `--help`) stays light.
The rest is internal.

Each capability is a wing of its own; the core they share sits at this level:

    launching/  plan a run, train one Ray task per split, keep the manifest (`ensemble launch`)
    status/     read where every split stands, draw it as a table, watch it (`ensemble status`)
    report/     one self-contained HTML page of a run (`ensemble report`)
    serve/      a Ray Serve application answering samples over HTTP (`ensemble serve`)
    api.py      the Python API above; sample.py writes its images as PNGs (`ensemble sample`)
    bundle.py   `ensemble export` and load_bundle: a trained ensemble that needs no run folder
    generators.py which generator answers for a label, a process's cache of loaded ones
    evaluate.py the paper's measures per class, into evaluation.parquet (`ensemble evaluate`)
    console.py  what a terminal shows while long work runs (progress bars)

    cluster.py, planning.py, routing.py, run_spec.py, errors.py: the core the wings share
    (connecting to Ray, splitting classes, label -> split, the run's spec, one-line errors).

Imports flow one way: cli -> ensemble -> workers -> manifests. Nothing here is imported by
workers/ or manifests/.
"""

from typing import TYPE_CHECKING

from ensemble.errors import EnsembleError

if TYPE_CHECKING:
    from ensemble.api import LaunchEvent, Run, launch, open
    from ensemble.bundle import Bundle, load_bundle

__all__ = ["Bundle", "EnsembleError", "LaunchEvent", "Run", "launch", "load_bundle", "open"]
_LAZY = {"LaunchEvent": "ensemble.api", "Run": "ensemble.api", "launch": "ensemble.api", "open": "ensemble.api",
         "Bundle": "ensemble.bundle", "load_bundle": "ensemble.bundle"}  # fmt: skip


def __getattr__(name: str):
    """The API's names, imported when first asked for (pandas, pyarrow and torch are not
    needed to import the package)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'ensemble' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
