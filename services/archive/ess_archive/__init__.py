"""The archive service: every reading as Parquet in S3-compatible object storage."""
