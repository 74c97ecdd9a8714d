"""Safe file intake: every file a pipeline reads passes through here first.

- ``paths``: names and globs cannot leave their base folder; a name is never read as a pattern.
- ``sniff``: the format is judged from the content, not the name.
- ``limits``: bytes (after decompression, stopped while decompressing), rows, columns, field length.
- ``encodings``: UTF-8 (with or without BOM), UTF-16, Windows-1252 or a declared encoding,
  transcoded as a stream; mixed or undetected encodings are rejected, never loaded garbled.
- ``settling``: a file still being written is left for the next run.
- ``workbooks``: macro, encrypted and XML-bomb workbooks are refused before parsing.
- ``fingerprints``: SHA-256 of each file, and the ledger of loaded files that skips duplicates.
- ``intake``: ``FileIntake``, which applies all of the above to one load's files.
"""
