"""Component files read by libyaml give what Dagster's own parser gives: values, and the
positions every error message points at."""

from pathlib import Path

import pytest
from dagster.components.core import decl
from dagster_shared.yaml_utils import parse_yamls_with_source_position

from etl_platform.dagster_private import speedups_enabled
from etl_platform.dagster_private.yaml_parser import LIBYAML, libyaml_component_files, parse_with_positions

PROJECT = Path(__file__).resolve().parents[2] / "etl_platform"

TRICKY = """\
base: &base {spend: 1.5, tags: [a, b]}
merged:
  <<: *base
  tags: [c]
  day: 2024-01-31
  zero_padded: '007'
  flow: {x: [1, {y: null}], "quoted key": yes}
again: *base
multi: |
  line one
  line two
---
second: document
---
"""


@pytest.mark.skipif(LIBYAML is None, reason="PyYAML is built without libyaml here")
@pytest.mark.parametrize("path", sorted(PROJECT.glob("defs/**/*.yaml")), ids=lambda p: str(p.relative_to(PROJECT)))
def test_every_component_file_parses_as_dagster_parses_it(path):
    text = path.read_text()
    assert parse_with_positions(text, str(path)) == parse_yamls_with_source_position(text, str(path))


def test_anchors_merge_keys_flow_style_and_several_documents_parse_as_dagster_parses_them():
    ours = parse_with_positions(TRICKY, "tricky.yaml")
    assert ours == parse_yamls_with_source_position(TRICKY, "tricky.yaml")
    assert [doc.value for doc in ours[1:]] == [{"second": "document"}, None]  # the trailing `---` opens an empty one
    assert ours[0].value["merged"] == {
        "spend": 1.5,
        "tags": ["c"],
        "day": "2024-01-31",
        "zero_padded": "007",
        "flow": {"x": [1, {"y": None}], "quoted key": True},
    }
    assert ours[0].source_position_tree.lookup(["merged", "tags"]).start.line == 4


@pytest.mark.parametrize("text", ["a: b: c\n", "source:\n  files: [a, b\n", "x:\n  - y\n z: 1\n"])
def test_a_malformed_file_fails_with_dagsters_message_naming_file_and_line(text):
    with pytest.raises(Exception) as ours:
        parse_with_positions(text, "pipelines/costs/defs.yaml")
    with pytest.raises(Exception) as dagsters:
        parse_yamls_with_source_position(text, "pipelines/costs/defs.yaml")
    assert str(ours.value) == str(dagsters.value)
    assert 'in "pipelines/costs/defs.yaml", line' in str(ours.value)


def test_dagsters_parser_is_back_in_place_after_the_tree_is_read():
    dagsters = decl.parse_yamls_with_source_position
    with pytest.raises(RuntimeError), libyaml_component_files():
        swapped = LIBYAML and speedups_enabled()
        assert decl.parse_yamls_with_source_position is (parse_with_positions if swapped else dagsters)
        raise RuntimeError("a component failed to load")
    assert decl.parse_yamls_with_source_position is dagsters


def test_a_loader_that_no_longer_reads_through_dagsters_parser_is_left_alone(monkeypatch):
    def another_parser(src, filename="<string>", implicits_to_remove=()):
        raise AssertionError("not called here")

    monkeypatch.setattr(decl, "parse_yamls_with_source_position", another_parser)
    with libyaml_component_files():
        assert decl.parse_yamls_with_source_position is another_parser
    assert decl.parse_yamls_with_source_position is another_parser
