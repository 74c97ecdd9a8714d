"""The Pipeline component type: a ``defs.yaml`` whose attributes are a PipelineSpec."""

import re
from pathlib import Path
from typing import Any

import dagster as dg
from pydantic import model_validator

from etl_platform import settings
from etl_platform.connectors.connections import declared_kinds
from etl_platform.connectors.landing import landing_folder
from etl_platform.destinations.base import WAREHOUSE
from etl_platform.factory.pipeline import PipelineContext, build_pipeline_defs
from etl_platform.spec.errors import SpecLocator
from etl_platform.spec.pipeline import PipelineSpec
from etl_platform.validation.expectations import resolve_expectations
from etl_platform.validation.pipeline import check_pipeline
from etl_platform.validation.training import check_train

# An environment variable whose name says it holds a secret. A pipeline file's values end up in the
# definitions (UI, metadata, run config), so a template must not copy a secret into one.
_SECRET_NAME = re.compile(r"(?i)PASSW(OR)?D|SECRET|TOKEN|API_?KEY|PRIVATE_?KEY|CREDENTIAL")
_EXPRESSION = re.compile(r"\{\{(.*?)\}\}", re.S)
_QUOTED = r"""(?:'[^']*'|"[^"]*")"""
_TEMPLATE = re.compile(rf"env\s*\.\s*\w+|env\s*\(\s*{_QUOTED}\s*(?:,\s*{_QUOTED}\s*)?\)|{_QUOTED}")
_ENV_READ = re.compile(r"""env\s*(?:\.\s*(\w+)|\[\s*['"](\w+)['"]|\(\s*['"](\w+)['"])""")


def fill_templates(value: Any, at: tuple = ()) -> Any:
    """``value`` with Dagster's templates (``{{ env.VAR }}``, ``{{ env('VAR', 'default') }}``) filled
    in, as Dagster fills them in any component's YAML and ours fill the connections file. Only text
    holding ``{{`` is rendered, so every other value keeps its type and its characters."""
    if isinstance(value, dict):
        return {key: fill_templates(item, (*at, key)) for key, item in value.items()}
    if isinstance(value, list):
        return [fill_templates(item, (*at, i)) for i, item in enumerate(value)]
    if not isinstance(value, str) or "{{" not in value:
        return value
    field = ".".join(str(part) for part in at) or "attributes"
    for expression in _EXPRESSION.findall(value):
        # Jinja renders any other name as '' without a word: SQL, a regex or a value holding '{{'
        # would change silently. Only environment reads and quoted text are templates here.
        if not _TEMPLATE.fullmatch(expression.strip()):
            raise ValueError(
                f"{field}: '{{{{ {expression.strip()} }}}}' is not an env template; write a literal "
                "'{{' as {{ '{{' }}"
            )
    for read in _ENV_READ.finditer(value):
        name = next(group for group in read.groups() if group)
        if _SECRET_NAME.search(name):
            raise ValueError(
                f"{field}: the template reads {name}, which holds a secret by its name; a pipeline file's values "
                f"become part of the definitions, so keep the secret in connections/defs.yaml as {{env: {name}}} "
                "or {secret: NAME}"
            )
    try:
        return dg.ResolutionContext.default().resolve_value(value)
    except Exception as err:  # noqa: BLE001 - Dagster's template errors have no public type
        raise ValueError(f"{field}: {err}") from err


class PipelineAttributes(PipelineSpec):
    """A pipeline file's attributes: the spec, with Dagster's templates filled in before it is validated."""

    @model_validator(mode="before")
    @classmethod
    def _fill_templates(cls, raw: Any) -> Any:
        return fill_templates(raw)


class Pipeline(dg.Component):
    """One pipeline: source files mapped, checked and loaded into the warehouse, then SQL models.

    The pipeline's name is its folder's name (``defs/pipelines/<name>/defs.yaml``).
    """

    def __init__(self, spec: PipelineSpec, context: PipelineContext):
        self.spec = spec
        self.context = context

    @classmethod
    def get_model_cls(cls) -> type[PipelineSpec]:
        return PipelineAttributes

    @classmethod
    def load(cls, attributes: PipelineSpec | None, context: dg.ComponentLoadContext) -> "Pipeline":
        if attributes is None:
            raise dg.DagsterInvalidDefinitionError(f"{context.path}: a pipeline needs attributes")
        name = Path(context.path).name
        tree = context.resolution_context.source_position_tree
        locate = SpecLocator(tree, fallback=str(context.path))
        kinds = declared_kinds(Path(context.defs_module_path))
        # Data never takes the location down: the files are compared with the mapping only when
        # asked (pipelines validate); a run rejects a file that does not fit, with the reason.
        landing = landing_folder() if settings.check_files_when_loading() else None
        names = check_pipeline(attributes, name, locate, landing, kinds)
        check_train(attributes, locate, names)
        expectations = resolve_expectations(attributes, locate, Path(context.path), names)
        defined_at = {"": locate.line_of([])}
        for i in range(len(attributes.transforms)):
            defined_at[f"transforms.{i}.sql"] = locate.line_of(["transforms", i, "sql"])
        dest = attributes.destination.connection
        context_ = PipelineContext(
            name=name,
            names=names,
            defined_at=defined_at,
            connection_kind=kinds[attributes.source.connection],
            destination_kind=None if dest == WAREHOUSE else kinds[dest],
            expectations=expectations,
        )
        return cls(attributes, context_)

    def build_defs(self, context: dg.ComponentLoadContext) -> dg.Definitions:
        return build_pipeline_defs(self.spec, self.context)
