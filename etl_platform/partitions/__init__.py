"""Partitioned pipelines: time windows or one partition per source file.

A partition's load deletes exactly its rows and inserts the new ones in one transaction
(``Destination.replace_slice``), so reruns and backfills never duplicate rows and never
touch other partitions. ``spec`` is the YAML contract, ``checks`` validates it when
definitions load, ``runs`` turns a run's partition into what it reads and replaces,
``definitions`` builds the Dagster partitions, backfill policy and schedule.
"""
