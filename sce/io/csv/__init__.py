"""CSV and TSV input: the bytes cut into blocks of whole records, and which column is what."""
