"""Layout of the shipped UI workflows (no server): groups and the Note (tools/workflow_ui.py).

* every node lies, title bar included, inside exactly one LiteGraph group (so moving the group
  moves it), the groups are the known roles and each holds the nodes of that role;
* no two nodes overlap, no two groups overlap, and the Note covers neither a node nor a group;
* the layout is generic: ``layout`` places any graph (here a synthetic one with an unknown group
  name) without overlaps.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import workflow_ui  # noqa: E402

UI_DIR = REPO / "workflows"
SHIPPED = sorted(p.stem for p in UI_DIR.glob("*.json"))
ROLES = {"Output": ("OpenLTXSaveVideo", "OpenLTXSaveAudio", "OpenLTXDecode"),
         "Prompt": ("OpenLTXTextEncode", "OpenLTXEnhancePrompt"), "Inputs": ("LoadImage", "OpenLTXLoadAudio")}


def role(kind: str) -> str | None:
    if "Loader" in kind:
        return "Models"
    return next((r for r, kinds in ROLES.items() if kind in kinds), None)


def box(node: dict) -> tuple[float, float, float, float]:
    """(x0, y0, x1, y1) of a node with its title bar."""
    (x, y), (w, h) = node["pos"], node["size"]
    return x, y - workflow_ui.TITLE_HEIGHT, x + w, y + h


def group_box(group: dict) -> tuple[float, float, float, float]:
    x, y, w, h = group["bounding"]
    return x, y, x + w, y + h


def overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def inside(a, b) -> bool:
    return b[0] <= a[0] and b[1] <= a[1] and a[2] <= b[2] and a[3] <= b[3]


@pytest.mark.parametrize("name", SHIPPED)
def test_nodes_sit_in_their_groups_and_nothing_overlaps(name):
    ui = json.loads((UI_DIR / f"{name}.json").read_text(encoding="utf-8"))
    groups = ui["groups"]
    assert groups and {g["title"] for g in groups} <= set(workflow_ui.GROUPS), [g["title"] for g in groups]
    assert {"Models", "Prompt", "Sampling", "Output"} <= {g["title"] for g in groups}
    nodes = [n for n in ui["nodes"] if n["type"] != "Note"]
    (note,) = [n for n in ui["nodes"] if n["type"] == "Note"]
    for node in nodes:
        holders = [g["title"] for g in groups if inside(box(node), group_box(g))]
        assert len(holders) == 1, f"{name}: node {node['id']} ({node['type']}) is in groups {holders}"
        expected = role(node["type"])
        if expected:
            assert holders == [expected], f"{name}: {node['type']} is in {holders}, expected {expected}"
        assert not overlap(box(node), box(note)), f"{name}: the Note covers node {node['id']}"
    for i, a in enumerate(nodes):
        for b in nodes[i + 1:]:
            assert not overlap(box(a), box(b)), f"{name}: nodes {a['id']} and {b['id']} overlap"
    for i, a in enumerate(groups):
        assert not overlap(group_box(a), box(note)), f"{name}: the Note covers group {a['title']}"
        for b in groups[i + 1:]:
            assert not overlap(group_box(a), group_box(b)), f"{name}: groups {a['title']} and {b['title']} overlap"


def test_layout_is_generic():
    order = ["1", "2", "3", "4", "5"]
    depth = {"1": 0, "2": 0, "3": 1, "4": 2, "5": 2}
    groups = {"1": "Models", "2": "Custom stuff", "3": "Sampling", "4": "Sampling", "5": "Output"}
    heights = {"1": 100, "2": 300, "3": 120, "4": 80, "5": 200}
    pos, ui_groups = workflow_ui.layout(order, depth, groups, heights, top=400)
    assert [g["title"] for g in ui_groups] == ["Models", "Sampling", "Output", "Custom stuff"]
    boxes = {k: (x, y - workflow_ui.TITLE_HEIGHT, x + workflow_ui.NODE_WIDTH, y + heights[k]) for k, (x, y) in pos.items()}
    for k, b in boxes.items():
        assert sum(inside(b, group_box(g)) for g in ui_groups) == 1, k
        assert b[1] >= 400
    keys = list(boxes)
    assert not any(overlap(boxes[a], boxes[b]) for i, a in enumerate(keys) for b in keys[i + 1:])
    assert pos["3"][0] < pos["4"][0]  # deeper nodes to the right within a group


def test_meta_group_overrides_the_role():
    info = {"category": "OpenLTX/sampling", "output_node": False}
    assert workflow_ui.group_of({"class_type": "OpenLTXSampler"}, info) == "Sampling"
    assert workflow_ui.group_of({"class_type": "OpenLTXSampler", "_meta": {"group": "Stage 2"}}, info) == "Stage 2"
    assert workflow_ui.group_of({"class_type": "LoadImage"}, {"category": "image"}) == "Inputs"
    assert workflow_ui.group_of({"class_type": "OpenLTXSaveAudio"}, {"category": "OpenLTX/decode",
                                                                     "output_node": True}) == "Output"
