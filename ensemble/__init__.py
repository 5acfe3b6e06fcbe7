"""The coordinator's side of acgan-ensemble: what the `ensemble` commands do.

Each capability is a wing of its own; the core they share sits at this level:

    launch/     plan a run, train one Ray task per split, keep the manifest (`ensemble launch`)
    status/     read where every split stands, draw it as a table, watch it (`ensemble status`)
    report/     one self-contained HTML page of a run (`ensemble report`)
    serve/      a Ray Serve application answering samples over HTTP (`ensemble serve`)
    sample.py   a label's images, written as PNGs (`ensemble sample`)
    evaluate.py the paper's measures per class, into evaluation.parquet (`ensemble evaluate`)
    console.py  what a terminal shows while long work runs (progress bars)

    cluster.py, planning.py, routing.py, run_spec.py, errors.py: the core the wings share
    (connecting to Ray, splitting classes, label -> split, the run's spec, one-line errors).

Imports flow one way: cli -> ensemble -> workers -> manifests. Nothing here is imported by
workers/ or manifests/.
"""
