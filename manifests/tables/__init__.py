"""The Parquet tables a run writes, each with a schema version and migrations from every
older version (parquet.py reads and writes them the same way):

    manifest.py    RUN/manifest.parquet, one row per split (SplitRecord)
    history.py     RUN/splits/NNN/history.parquet, a split's training curves
    evaluation.py  RUN/evaluation.parquet, one row per class measured by `ensemble evaluate`
"""
