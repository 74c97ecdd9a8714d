"""Parquet, read by DuckDB as it is."""

from etl_platform.connectors.formats.base import FileFormat, register_format, scan_path


@register_format
class ParquetFormat(FileFormat):
    name = "parquet"
    asset_kind = "parquet"

    def scan(self, path, columns, rejects=None, dialect=None) -> str:
        return f"read_parquet({scan_path(path)})"
