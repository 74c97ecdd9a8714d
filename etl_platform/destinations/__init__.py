"""Where a load's valid rows are committed, one package per kind, found through ``registry``."""
