"""The defs folder built without the component catalogue, each declaration looked up once.

Works around two costs of Dagster 1.13.27's ``ComponentTree.build_defs()`` (what
``dg.load_from_defs_folder`` runs):

- it adds the catalogue of every installed component library (for the UI's scaffolding),
  whose imports (boto3 and friends) cost seconds in every process that loads the location:
  the webserver, the daemon, each run;
- it finds the declaration of each component by listing the whole tree again, a cost that
  grows with the square of the pipeline count. Given every declaration at once through the
  tree's ``state_tracker`` cache (not public), it looks each one up.

With ``ETL_DAGSTER_SPEEDUPS=0`` the tree is built by ``build_defs()`` as Dagster builds it.
"""

import dagster as dg

from etl_platform.dagster_private import speedups_enabled
from etl_platform.dagster_private.yaml_parser import libyaml_component_files


def build_tree(tree: dg.ComponentTree) -> dg.Definitions:
    """Every definition in a component tree, built by Dagster."""
    if not speedups_enabled():
        return tree.build_defs()
    with libyaml_component_files():
        root = tree.find_root_decl()
    for loc, declaration in root.iterate_loc_component_decl_pairs():
        tree.state_tracker.set_cache_data(loc, component_decl=declaration)
    children = [tree.build_defs(child.loc) for child in root.iterate_child_component_decls()]
    return dg.Definitions.merge(*children, dg.Definitions(component_tree=tree))
