"""Credentials: references to them (``{env:}``, ``{secret:}``), scrubbing, and the encrypted vault."""
