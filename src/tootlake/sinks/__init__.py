"""Sinks write records into the lake: layout (paths), storage (local | s3), parquet (the writer)."""
