"""What every part of the pipeline contract shares: the base model and the identifier pattern.

The sections of a pipeline (``train``, ``expectations``, ``partitions``, ``triggers``) live beside
the features they configure and build on this module; ``spec.py`` assembles them.
"""

from pydantic import BaseModel, ConfigDict

IDENTIFIER = r"^[A-Za-z_][A-Za-z0-9_]*$"


class SpecModel(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)
