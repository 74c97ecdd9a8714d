"""The executor every job runs on, chosen by ``ETL_EXECUTOR``."""

import os

import dagster as dg


def chosen_executor() -> dg.ExecutorDefinition:
    """The executor of every job, from ``ETL_EXECUTOR``: ``in_process`` (default) or ``celery``.

    In-process by default: the multiprocess executor re-imports the code location for every
    step, which costs seconds per run. ``celery`` spreads one run's steps over Celery workers
    (deploy/README.md); the broker and result backend URLs are read from
    ``ETL_CELERY_BROKER_URL`` / ``ETL_CELERY_BACKEND_URL`` when a run starts, so they (and
    any password in them) never enter the definitions.
    """
    choice = os.environ.get("ETL_EXECUTOR", "in_process")
    if choice == "in_process":
        return dg.in_process_executor
    if choice == "celery":
        from dagster_celery import celery_executor

        backend = "ETL_CELERY_BACKEND_URL" if os.environ.get("ETL_CELERY_BACKEND_URL") else "ETL_CELERY_BROKER_URL"
        return celery_executor.configured(
            {"broker": {"env": "ETL_CELERY_BROKER_URL"}, "backend": {"env": backend}}, name="celery"
        )
    raise ValueError(f"ETL_EXECUTOR={choice!r}: expected 'in_process' or 'celery'")
