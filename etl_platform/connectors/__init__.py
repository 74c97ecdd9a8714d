"""Sources by kind, one module each, found through ``registry`` (and file formats in ``formats``)."""
