"""A run's records and where they live; the bottom layer, importing nothing of the project.

    run_dir.py   a run's folder: its spec (run.json), manifest and split folders
    tables/      the Parquet tables (manifest, history, evaluation), versioned
    storage/     local folders and object storage behind one Location API, atomic writes
    locks/       one launch at a time per run (a file lock, an S3 lease)
    errors.py    UserError, the base of every one-line error
"""
