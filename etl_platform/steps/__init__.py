"""⑤ Run time, as plain functions: extract by read shape, ingest and staging, casting and rules, the
commit and its recovery, transforms, replay of rejected rows."""
