"""CSV and TSV input: the bytes cut into blocks of whole records (:mod:`.records`), which
column is what (:mod:`.columns`), and a block's cells read as numbers (:mod:`.parse`, with
the short ways for plain lines, :mod:`.plain`, and rows of many columns, :mod:`.wide`),
every bad cell worded by line and column (:mod:`.problems`)."""
