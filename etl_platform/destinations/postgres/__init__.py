"""A PostgreSQL table as a destination: bulk copy, one transaction by sync mode, state beside the table."""
