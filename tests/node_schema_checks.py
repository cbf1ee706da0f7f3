"""One check of the pack's node schemas, shared by the per-module test files."""

from __future__ import annotations

from pathlib import Path


def assert_schemas_documented(module, repo_root: Path) -> None:
    """Every node of ``module.NODES``: OpenLTX id, "LTX-2 " display name, OpenLTX/ category, a
    description, a tooltip on every input and output, a help page, and a V1 node info that builds."""
    for node in module.NODES:
        schema = node.define_schema()
        assert schema.node_id.startswith("OpenLTX") and schema.display_name.startswith("LTX-2 ")
        assert schema.category.startswith("OpenLTX/") and schema.description
        untipped = [i.id for i in schema.inputs if not (i.tooltip or "").strip()]
        untipped += [o.display_name or o.io_type for o in schema.outputs if not (o.tooltip or "").strip()]
        assert not untipped, f"{schema.node_id}: no tooltip on {untipped}"
        assert (repo_root / "web" / "docs" / f"{schema.node_id}.md").is_file(), schema.node_id
        node.GET_NODE_INFO_V1()  # the host's own schema checks
