"""Training, evaluating, registering and scoring models on a pipeline's tables, tracked in MLflow."""
