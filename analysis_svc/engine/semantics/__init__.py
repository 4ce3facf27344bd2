"""The semantic layer: the role of every column and the time axis of the table."""
