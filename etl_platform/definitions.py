"""The code location: every definition under ``defs/``, plus the policies that apply to all."""

import warnings
from pathlib import Path

import dagster as dg

from etl_platform.location.assemble import load_location

# Dagster marks parts of the component system beta/preview; the warnings say nothing a
# pipeline author can act on and drown the output of `dg` and `dagster` commands.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)


@dg.definitions
def defs() -> dg.Definitions:
    return load_location(dg.ComponentTree.for_project(Path(__file__).parent))
