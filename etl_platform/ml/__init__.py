"""Training, evaluating, registering and scoring models on a pipeline's tables, tracked in MLflow."""

# The pipeline contract (spec.py) holds the train section defined in ml/spec.py, which builds on
# spec.py's SpecModel: importing the contract first resolves that cycle whichever is imported first.
import etl_platform.spec  # noqa: F401
