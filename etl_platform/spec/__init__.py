"""① The YAML contract: every model a pipeline, connection or alert file may say. A leaf: it imports
nothing of ours but ``sql``."""
