"""A table of Parquet or CSV files, locally or on S3, committed by replacing its manifest."""
