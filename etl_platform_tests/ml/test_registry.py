"""Model versions registered at the same time on a real MLflow store: no collision, and the
champion alias only ever points at a READY version that won by the rule."""

import threading

import pandas as pd

from etl_platform.ml import registry
from etl_platform.resources.mlflow import MLflowResource, local_store
from etl_platform.spec.ml import PromotionSpec
from etl_platform_tests.ml.conftest import client as client_of

NAME = "demo_concurrent"


def _logged_model_uri(resource: MLflowResource) -> str:
    import mlflow
    import mlflow.sklearn
    from sklearn.linear_model import LinearRegression

    client = resource.client()
    experiment = resource.experiment_id(client, NAME)
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0, 4.0]})
    with mlflow.start_run(experiment_id=experiment):
        info = mlflow.sklearn.log_model(
            LinearRegression().fit(frame, [2.0, 4.0, 6.0, 8.0]),
            name="model",
            pip_requirements=mlflow.sklearn.get_default_pip_requirements(include_skops=True),
        )
    return info.model_uri


def test_concurrent_registrations_get_their_own_versions_and_the_best_one_is_champion(mlflow_store):
    resource = MLflowResource()
    uri = _logged_model_uri(resource)
    client = resource.client()
    scores = [0.61, 0.93, 0.72, 0.88, 0.55, 0.90]  # r2 of each "training", registered all at once
    start = threading.Barrier(len(scores))
    registered: dict[float, str] = {}
    errors: list[BaseException] = []

    def train_and_register(score: float) -> None:
        try:
            start.wait()
            version = registry.register(client, NAME, uri, run_id=None, tags={"score": str(score)})
            with registry.promotion_lock(local_store(resource.uri), NAME):
                current = registry.champion(client, NAME)
                current_score = float(current.tags["score"]) if current else None
                decision = registry.decide(PromotionSpec(floor=0.5), "r2", score, current_score)
                if decision.promote:
                    registry.promote(
                        client, NAME, version.version, decision.reason, current.version if current else None
                    )
                else:
                    registry.reject(client, NAME, version.version, decision.reason)
            registered[score] = str(version.version)
        except BaseException as err:  # noqa: BLE001 - reported by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=train_and_register, args=(s,)) for s in scores]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    store = client_of(mlflow_store)
    versions = store.search_model_versions(f"name = '{NAME}'")
    assert sorted(int(v.version) for v in versions) == list(range(1, len(scores) + 1))  # no collision, none lost
    assert sorted(registered.values(), key=int) == sorted((str(v.version) for v in versions), key=int)
    assert all(v.status == "READY" for v in versions)
    champion = store.get_model_version_by_alias(NAME, "champion")
    # Decisions were serialised: the last word belongs to the best model, whatever the order.
    assert str(champion.version) == registered[max(scores)] and champion.status == "READY"
    assert champion.tags["promotion"] == "promoted" and "r2 0.9300" in champion.tags["promotion_reason"]
    by_version = {str(v.version): v for v in versions}
    for score, version in registered.items():
        tags = by_version[version].tags
        if version != str(champion.version) and tags.get("promotion") == "promoted":
            assert "replaced by version" in tags["archived"]  # was champion once, archived when beaten
        if score < 0.93:
            assert version != str(champion.version)
