"""The Pipeline component type: a ``defs.yaml`` whose attributes are a PipelineSpec."""

from pathlib import Path

import dagster as dg

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


class Pipeline(dg.Component):
    """One pipeline: source files mapped, checked and loaded into the warehouse, then SQL models.

    The pipeline's name is its folder's name (``defs/pipelines/<name>/defs.yaml``).
    """

    def __init__(self, spec: PipelineSpec, context: PipelineContext):
        self.spec = spec
        self.context = context

    @classmethod
    def get_model_cls(cls) -> type[PipelineSpec]:
        return PipelineSpec

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
