# Shared by scripts/dev and scripts/test: a project virtualenv with the locked dependencies.
VENV="${ETL_VENV:-$PWD/.venv}"

ensure_uv() {
  if command -v uv >/dev/null 2>&1; then UV=uv; return; fi
  if [ -x "$HOME/.local/bin/uv" ]; then UV="$HOME/.local/bin/uv"; return; fi
  python3 -m pip install --quiet --user uv >/dev/null 2>&1 || python3 -m pip install --quiet uv
  UV="$(command -v uv || echo "$HOME/.local/bin/uv")"
}

ensure_venv() {
  ensure_uv
  # uv.lock pins every package; --frozen fails instead of silently re-resolving. Bytecode is
  # compiled once here: without it every process (each run, the webserver, the daemon) compiles
  # Dagster from source again, seconds each where PYTHONDONTWRITEBYTECODE is set.
  UV_PROJECT_ENVIRONMENT="$VENV" "$UV" sync --frozen --extra dev --quiet --compile-bytecode
  unset PYTHONDONTWRITEBYTECODE  # our own modules keep their bytecode too
}

use_embedded_instance() {
  # Local state under ETL_HOME; the Dagster instance reads the project's dagster.yaml.
  export ETL_HOME="${ETL_HOME:-$PWD/.etl_home}"
  export DAGSTER_HOME="${DAGSTER_HOME:-$ETL_HOME/dagster}"
  mkdir -p "$DAGSTER_HOME"
  [ -e "$DAGSTER_HOME/dagster.yaml" ] || ln -s "$PWD/dagster.yaml" "$DAGSTER_HOME/dagster.yaml"
}
