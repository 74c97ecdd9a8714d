"""Assembling the code location: the component tree read, references between pipelines checked,
the jobs resolved, the executor chosen."""
