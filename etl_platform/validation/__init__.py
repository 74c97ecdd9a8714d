"""② Load-time checks of a spec that types cannot express: SQL bound to the declared columns, files
peeked, expectations, partitions and training checked against the pipeline."""
