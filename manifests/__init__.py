"""The run's on-disk records: the Parquet manifest (one row per split) and the run spec."""
