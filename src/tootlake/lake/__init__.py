"""The lake: Delta Lake tables in a folder or under an S3 prefix.

`layout` names the tables, `tables` appends to them, `writer` batches records into commits,
`reader` gives DuckDB views over them (`open_lake`), `maintenance` merges `posts` and
compacts, `migrate` converts a lake of the layout before Delta; `storage` and `s3` hold the
files tootlake keeps beside the tables (run statistics, dead letters).
"""
