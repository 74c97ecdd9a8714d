"""The model registry: versions registered safely under concurrency, and the `champion` alias.

MLflow 3 has no stages: the version that scores is the one the alias `champion` points at.
A version that loses stays registered with the reason in its tags and description; a
champion that is replaced loses the alias and is tagged `archived`.
"""

import fcntl
import random
import time
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from etl_platform.ml.estimators import METRICS
from etl_platform.spec.ml import PromotionSpec

CHAMPION = "champion"
READY = "READY"


class RegistryError(RuntimeError):
    pass


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str


def _transient(err: Exception) -> bool:
    """Errors of two writers at once on the store (SQLite's lock, a version number taken meanwhile)."""
    text = str(err).lower()
    return any(
        s in text for s in ("database is locked", "model version creation error", "unique constraint", "integrityerror")
    )


def register(client, name: str, model_uri: str, run_id: str, tags: dict[str, str], timeout: float = 300.0):
    """Register ``model_uri`` as a new version of ``name`` and wait until it is READY.

    Several runs may register versions of one model at once: each gets its own version number
    (MLflow allocates them in a transaction; a collision or SQLite's lock is retried here)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    for attempt in range(12):
        try:
            version = mlflow.register_model(model_uri, name, await_registration_for=0, tags=tags)
            break
        except MlflowException as err:
            if not _transient(err) or attempt == 11:
                raise
            time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
    return wait_until_ready(client, name, version.version, timeout)


def wait_until_ready(client, name: str, version: str, timeout: float = 300.0):
    """The model version once its status is READY; raises when registration failed or took too long."""
    deadline = time.monotonic() + timeout
    delay = 0.05
    while True:
        found = client.get_model_version(name, version)
        if found.status == READY:
            return found
        if found.status == "FAILED_REGISTRATION":
            raise RegistryError(f"model {name} version {version} failed to register: {found.status_message}")
        if time.monotonic() > deadline:
            raise RegistryError(f"model {name} version {version} is still {found.status} after {timeout:.0f}s")
        time.sleep(delay)
        delay = min(delay * 2, 2.0)


def champion(client, name: str):
    """The version the `champion` alias points at, or None."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def decide(rule: PromotionSpec, metric: str, challenger: float, current: float | None) -> Decision:
    """Whether a model measuring ``challenger`` replaces a champion measuring ``current`` (None: no champion)."""
    better = METRICS[metric].higher_is_better
    word = "at least" if better else "at most"
    if rule.floor is not None and (challenger < rule.floor if better else challenger > rule.floor):
        return Decision(False, f"{metric} {challenger:.4f} does not reach the floor ({word} {rule.floor})")
    if current is None:
        floor = f", reaches the floor ({word} {rule.floor})" if rule.floor is not None else ""
        return Decision(True, f"first champion: {metric} {challenger:.4f}{floor}")
    gain = challenger - current if better else current - challenger
    needed = f"by at least {rule.min_improvement}" if rule.min_improvement else "or match it"
    if gain >= rule.min_improvement:
        return Decision(True, f"{metric} {challenger:.4f} beats the champion's {current:.4f} {needed}")
    return Decision(False, f"{metric} {challenger:.4f} does not beat the champion's {current:.4f} {needed}")


@contextmanager
def promotion_lock(store: Path | None, name: str):
    """Held while one run compares with the champion and moves the alias, so two runs cannot
    both promote against the same old champion. For the embedded store a file lock beside it
    (threads and processes); with a tracking server the warehouse pool already serialises runs."""
    if store is None:
        yield
        return
    path = store.parent / "locks" / f"{name}.lock"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def promote(client, name: str, version: str, reason: str, previous: str | None) -> None:
    """Point `champion` at ``version`` (only once it is READY), record why, archive the previous one."""
    ready = wait_until_ready(client, name, version)
    client.set_registered_model_alias(name, CHAMPION, ready.version)
    client.set_model_version_tag(name, ready.version, "promotion", "promoted")
    client.set_model_version_tag(name, ready.version, "promotion_reason", reason)
    client.set_model_version_tag(name, ready.version, "promoted_at", _now())
    client.update_model_version(name, ready.version, description=f"Champion since {_now()}: {reason}")
    if previous and str(previous) != str(ready.version):
        client.set_model_version_tag(name, previous, "archived", f"replaced by version {ready.version} at {_now()}")


def reject(client, name: str, version: str, reason: str) -> None:
    """Keep the version registered, not champion, with the reason."""
    client.set_model_version_tag(name, version, "promotion", "rejected")
    client.set_model_version_tag(name, version, "promotion_reason", reason)
    client.update_model_version(name, version, description=f"Not promoted: {reason}")
