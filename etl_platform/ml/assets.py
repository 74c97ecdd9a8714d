"""A pipeline's `train` section -> its ML slice: feature set, model, champion, predictions, train job.

One step does it all (each step costs a second or more of orchestration): it builds the feature
table, fits and measures the model, logs and registers it in MLflow, applies the promotion rule,
and has the champion score the rows. The train job runs the pipeline's load first, so a failed
blocking check on the loaded table stops the run before anything is trained.
"""

from collections import deque

import dagster as dg

from etl_platform.ml import features as feature_set
from etl_platform.ml import registry, scoring, tracking, training
from etl_platform.ml.estimators import METRICS
from etl_platform.resources.mlflow import MLflowResource, local_store
from etl_platform.resources.warehouse import WAREHOUSE_POOL, WarehouseResource
from etl_platform.secrets.references import scrub
from etl_platform.spec.ml import TrainSpec
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.spec.tables import TableNames, transform_references


def _key(schema: str, table: str) -> dg.AssetKey:
    return dg.AssetKey([schema, table])


def _reads(train: TrainSpec, names: TableNames) -> list[dg.AssetKey]:
    """Tables the feature set is built from."""
    refs = sorted(transform_references(train.query)) if train.query is not None else [train.table or names.table]
    return [_key(names.schema, r) if "." not in r else _key(*r.split(".", 1)) for r in refs]


def _upstream_in_pipeline(spec: PipelineSpec, names: TableNames, reads: list[dg.AssetKey]) -> set[dg.AssetKey]:
    """This pipeline's tables the feature set needs, directly or through its transforms: the train
    job builds them in the same run (the load always, so its checks gate the training)."""
    by_name = {t.name: t for t in spec.transforms}
    needed = {_key(names.schema, names.table), _key(names.schema, names.rejected)}
    queue = deque(k.path[1] for k in reads if k.path[0] == names.schema)
    while queue:
        name = queue.popleft()
        if name in by_name and _key(names.schema, name) not in needed:
            needed.add(_key(names.schema, name))
            queue.extend(r for r in transform_references(by_name[name].sql) if "." not in r)
    return needed


def build_train_defs(spec: PipelineSpec, pipeline: str, names: TableNames) -> dg.Definitions:
    """The ML slice of one pipeline whose spec has a `train` section."""
    train = spec.train
    assert train is not None
    schema, model = names.schema, train.model_key
    model_name = train.registered_name(pipeline)
    features_key, model_key = _key(schema, f"{model}_features"), _key(schema, f"{model}_model")
    champion_key, predictions_key = _key(schema, f"{model}_champion"), _key(schema, f"{model}_predictions")
    reads = _reads(train, names)
    common = {"group_name": pipeline, "owners": list(spec.owners)}
    rule = training.rule_metric(train)
    specs = [
        dg.AssetSpec(
            features_key,
            deps=reads,
            kinds={"duckdb"},
            description=f"The rows model {model_name} trains on: features, "
            f"target{' and id columns' if train.id_columns else ''}, "
            "rows without a target left out. Its row count and order-independent hash are logged with each training.",
            metadata={"dagster/table_name": f"{schema}.{model}_features"},
            **common,
        ),
        dg.AssetSpec(
            model_key,
            deps=[features_key],
            kinds={"scikitlearn", "mlflow"},
            description=f"{train.estimator} predicting {train.target}, trained and measured on held-out rows; "
            f"each materialization is an MLflow run and a new version of registered model {model_name}.",
            metadata={"registered_model": model_name, "estimator": train.estimator},
            **common,
        ),
        dg.AssetSpec(
            champion_key,
            deps=[model_key],
            kinds={"mlflow"},
            description=f"Which version of {model_name} is champion (MLflow alias 'champion'): a new model replaces it "
            f"when its {rule} {_rule_text(train)}.",
            metadata={"registered_model": model_name},
            **common,
        ),
        dg.AssetSpec(
            predictions_key,
            deps=[champion_key, features_key],
            kinds={"duckdb"},
            skippable=True,
            description=f"The champion's prediction of {train.target} for every row of the feature set, with the "
            "model name and version that produced it.",
            metadata={"dagster/table_name": f"{schema}.{model}_predictions"},
            **common,
        ),
    ]

    @dg.multi_asset(
        name=f"{pipeline}__train_{model}",
        specs=specs,
        can_subset=False,
        pool=WAREHOUSE_POOL,
        required_resource_keys={"warehouse", "mlflow"},
    )
    def train_model(context: dg.AssetExecutionContext):
        warehouse: WarehouseResource = context.resources.warehouse
        tracker: MLflowResource = context.resources.mlflow
        try:
            yield from _train_run(context, warehouse, tracker, train, pipeline, names, model_name)
        except (feature_set.FeatureError, training.TrainingFailed, registry.RegistryError) as err:
            # the cause is this message before the scrub (and MLflow's errors behind it): it may hold a credential
            raise dg.Failure(scrub(str(err))) from None

    keys = [features_key, model_key, champion_key, predictions_key]
    if spec.partitions:  # a job cannot mix partitioned and unpartitioned assets: train on what is loaded
        selection = dg.AssetSelection.assets(*keys)
    else:
        selection = dg.AssetSelection.assets(*_upstream_in_pipeline(spec, names, reads), *keys)
    job = dg.define_asset_job(
        f"{pipeline}_train_job",
        selection=selection,
        description=f"Load pipeline {pipeline}, then train, register and (by the promotion rule) promote model "
        f"{model_name}, and score with the champion. A failed blocking check on the load stops the training.",
    )
    schedules = []
    if train.cron:
        schedules.append(
            dg.ScheduleDefinition(
                name=f"{pipeline}_train_schedule",
                cron_schedule=train.cron,
                job=job,
                execution_timezone=spec.triggers.timezone,
                default_status=dg.DefaultScheduleStatus.STOPPED,
            )
        )
    return dg.Definitions(assets=[train_model], jobs=[job], schedules=schedules)


def _rule_text(train: TrainSpec) -> str:
    rule = train.promotion
    parts = [
        f"beats the champion's by at least {rule.min_improvement}"
        if rule.min_improvement
        else "matches or beats the champion's"
    ]
    if rule.floor is not None:
        parts.append(
            f"is {'at least' if METRICS[training.rule_metric(train)].higher_is_better else 'at most'} {rule.floor}"
        )
    return " and ".join(parts)


def _train_run(context, warehouse, tracker, train: TrainSpec, pipeline: str, names: TableNames, model_name: str):
    """The step: features -> fit -> MLflow run and version -> promotion -> predictions."""
    schema, model = names.schema, train.model_key
    run_id = context.run.run_id
    with warehouse.get_connection() as con:
        features = feature_set.build(con, train, schema=schema, loaded_table=names.table, table=f"{model}_features")
        frame = feature_set.read_frame(con, features)
    context.log.info(f"feature set {schema}.{features.table}: {features.rows:,} rows, hash {features.data_hash[:12]}")
    trained = training.fit(train, frame)
    context.log.info(f"trained {train.estimator}: " + ", ".join(f"{k}={v:.4f}" for k, v in trained.metrics.items()))

    client = tracker.client()
    experiment_id = tracker.experiment_id(client, model_name)
    tags = {
        "dagster.run_id": run_id,
        "dagster.job": context.job_name,
        "dagster.partition": context.partition_key if context.has_partition_key else "",
        "etl.pipeline": pipeline,
        "etl.data_hash": features.data_hash,
    }
    logged = tracking.log_training(experiment_id, train, trained, features, tags)
    version = registry.register(client, model_name, logged.model_uri, logged.run_id, tags={"dagster.run_id": run_id})
    metric = training.rule_metric(train)
    with registry.promotion_lock(local_store(tracker.uri), model_name):
        current = registry.champion(client, model_name)
        current_value = _champion_value(client, current, trained, train, metric) if current else None
        decision = registry.decide(train.promotion, metric, trained.metrics[metric], current_value)
        if decision.promote:
            registry.promote(client, model_name, version.version, decision.reason, current.version if current else None)
        else:
            registry.reject(client, model_name, version.version, decision.reason)
        champion = registry.champion(client, model_name)
    context.log.info(
        f"{model_name} version {version.version}: {'promoted' if decision.promote else 'not promoted'}: "
        f"{decision.reason}"
    )

    run_url = tracker.run_url(experiment_id, logged.run_id)
    version_url = tracker.model_version_url(model_name, version.version)
    yield dg.MaterializeResult(
        asset_key=_key(schema, features.table),
        metadata={
            "dagster/row_count": features.rows,
            "dagster/column_schema": dg.TableSchema(columns=[dg.TableColumn(n, t) for n, t in features.columns]),
            "data_hash": features.data_hash,
        },
    )
    yield dg.MaterializeResult(
        asset_key=_key(schema, f"{model}_model"),
        metadata={
            **{f"metric/{k}": round(v, 6) for k, v in trained.metrics.items()},
            "mlflow_run": dg.MetadataValue.url(run_url),
            "mlflow_run_id": logged.run_id,
            "model_version": int(version.version),
            "model_version_url": dg.MetadataValue.url(version_url),
            "rows_train": len(trained.X_train),
            "rows_test": len(trained.X_test),
            "data_hash": features.data_hash,
        },
    )
    champion_meta = {
        "promoted": decision.promote,
        "reason": decision.reason,
        "candidate_version": int(version.version),
        f"candidate_{metric}": round(trained.metrics[metric], 6),
    }
    if current_value is not None:
        champion_meta[f"previous_champion_{metric}"] = round(current_value, 6)
    if champion is not None:
        champion_meta |= {
            "champion_version": int(champion.version),
            "champion_url": dg.MetadataValue.url(tracker.model_version_url(model_name, champion.version)),
        }
    yield dg.MaterializeResult(asset_key=_key(schema, f"{model}_champion"), metadata=champion_meta)
    if champion is None:
        context.log.warning(f"{model_name} has no champion yet; no predictions were written")
        return
    with warehouse.get_connection() as con:
        scored = scoring.score(
            con,
            frame,
            train,
            model_name=model_name,
            version=champion.version,
            run_id=champion.run_id or "",
            features=features,
            table=f"{model}_predictions",
            load_id=run_id,
        )
    yield dg.MaterializeResult(
        asset_key=_key(schema, f"{model}_predictions"),
        metadata={
            "dagster/row_count": scored.rows,
            "model_version": int(scored.model_version),
            "model_version_url": dg.MetadataValue.url(tracker.model_version_url(model_name, scored.model_version)),
        },
    )


def _champion_value(client, current, trained, train: TrainSpec, metric: str) -> float:
    """The champion measured on this run's test rows, so both models are judged on the same data;
    its recorded value when it cannot score them (e.g. the features changed since)."""
    import mlflow.pyfunc
    from mlflow.exceptions import MlflowException

    try:
        model = mlflow.pyfunc.load_model(f"models:/{current.name}/{current.version}")
        return training.measure(model.predict(trained.X_test), trained.y_test, [metric], trained.task)[metric]
    except (MlflowException, ValueError, KeyError, TypeError) as err:
        recorded = client.get_run(current.run_id).data.metrics.get(metric) if current.run_id else None
        if recorded is None:
            # MLflow's error may hold the tracking URL's credentials: the step scrubs this message, not a cause
            raise registry.RegistryError(
                f"the champion (version {current.version}) cannot score this run's test rows ({err}) and has no "
                f"recorded {metric}; remove its 'champion' alias in MLflow to let a new model be promoted"
            ) from None
        return float(recorded)
