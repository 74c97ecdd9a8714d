-- Run once by the postgres image on an empty data volume: MLflow gets a database of its own
-- next to Dagster's (POSTGRES_DB). Both belong to POSTGRES_USER.
CREATE DATABASE mlflow;
