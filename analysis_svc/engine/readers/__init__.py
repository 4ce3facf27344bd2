"""File readers: detect the format and parse CSV, XLSX, JSON or Parquet into a Table."""
