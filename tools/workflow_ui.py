"""API-format ComfyUI prompts <-> UI-format (LiteGraph ``"version": 0.4``) workflows.

    python tools/workflow_ui.py API.json OUT.json --object-info object_info.json
    python tools/workflow_ui.py API.json OUT.json --server http://127.0.0.1:8188
    python tools/workflow_ui.py --shipped            # tests/workflows_api/*.json -> workflows/*.json

An API prompt (what ``POST /prompt`` takes) names each node's inputs; a UI workflow (what the
ComfyUI frontend loads and saves) lists nodes with positions, sockets, positional
``widgets_values`` and links ``[id, from_node, from_slot, to_node, to_slot, TYPE]``.  Turning
one into the other needs each node's schema from ``/object_info``: the order of its widgets,
which inputs are sockets, its outputs.  ``--shipped`` starts a headless ComfyUI with the pack
(``tests/comfy_host.py``) to read that schema, unless ``--server`` / ``--object-info`` is given.

Frontend details the converter reproduces (ComfyUI 0.3.75, frontend 1.2x-1.3x):
* a seed-like INT (``control_after_generate``) is followed in ``widgets_values`` by its
  control value (``"fixed"`` here, so a shipped workflow reproduces the reference's seed);
* ``image_upload`` and ``video_upload`` add one widget value (``"image"``), ``audio_upload`` two
  (``None, None``): the frontend adds its upload widget(s) after the node's inputs, so these
  values follow the last widget (right after the file name only when that is the node's one
  input, as in core LoadImage);
* a widget input fed by a link keeps its widget value and gets a socket ``{"widget": {"name"}}``;
* optional sockets carry ``"shape": 7``; loaders carry ``properties.models`` download hints.

``ui_to_api`` is the reverse (used by the tests to check a UI file against its API twin).
Node titles come from an API node's ``_meta.title`` (ComfyUI's own export field).

Layout: nodes are placed in LiteGraph groups by role - Models (loaders), Inputs (images, sounds
and their encoders), Prompt (text nodes), Sampling (everything between), Output (decode and
save) - chosen from each node's schema (``group_of``; an API node's ``_meta.group`` overrides
it).  Groups sit side by side from left to right in that order; inside a group, nodes stand in
columns by their depth in the graph.  The Note with the description and the model list sits
above the groups, so it never covers a node.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # model_catalog next to this file

import model_catalog  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHIPPED_API_DIR = REPO_ROOT / "tests" / "workflows_api"
SHIPPED_UI_DIR = REPO_ROOT / "workflows"

WIDGET_TYPES = {"INT", "FLOAT", "STRING", "BOOLEAN", "COMBO"}
SEED_CONTROL = "fixed"
COLUMN_WIDTH = 380  # px between layout columns
NODE_WIDTH = 330
NOTE_WIDTH = 720
NODE_GAP = 50  # px between nodes stacked in a column (the title bar needs 30 of them)
TITLE_HEIGHT = 30  # LiteGraph draws a node's title bar above its pos
GROUP_PAD = 20
GROUP_FONT = 24
GROUP_HEADER = int(GROUP_FONT * 1.4)  # LiteGraph's group title bar
GROUP_GAP = 60  # px between neighbouring groups
# Groups in their left-to-right order, with LiteGraph's palette colours.
GROUPS = {"Models": "#3f789e", "Inputs": "#8A8", "Prompt": "#b58b2a", "Sampling": "#a1309b", "Output": "#88A"}
# Official files -> (ComfyUI model folder, download URL) come from tools/model_catalog.py, the table
# the download presets use: a loader naming one gets a properties.models entry (the frontend's
# missing-model dialog offers the download) and every workflow's Note lists them.  A Hugging Face
# folder (Google's Gemma) is no single download: only the Note names it, with its preset.


# ----------------------------------------------------------------------------- schema helpers
def input_specs(info: dict) -> list[tuple[str, str, dict, bool]]:
    """``[(name, type, options, optional)]`` of a node's inputs in widget order (hidden ones skipped)."""
    sections = info.get("input", {})
    order = info.get("input_order") or {s: list((sections.get(s) or {}).keys()) for s in ("required", "optional")}
    out = []
    for section in ("required", "optional"):
        for name in order.get(section, []):
            spec = (sections.get(section) or {})[name]
            kind = spec[0]
            options = spec[1] if len(spec) > 1 and isinstance(spec[1], dict) else {}
            out.append((name, "COMBO" if isinstance(kind, list) else kind, options, section == "optional"))
    return out


def is_widget(kind: str, options: dict) -> bool:
    return kind in WIDGET_TYPES and not options.get("forceInput", False)


def is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def widget_extras(options: dict) -> list:
    """UI-only values the frontend stores right after a widget's own value (the seed control)."""
    if options.get("control_after_generate"):
        return [SEED_CONTROL]
    return []


def upload_extras(options: dict) -> list:
    """Values of the upload widget(s) the frontend adds for a file combo (after the last required widget)."""
    if options.get("image_upload") or options.get("video_upload"):  # the upload button's value
        return ["image"]
    if options.get("audio_upload"):  # the upload button and the audio player
        return [None, None]
    return []


def extras_after(info: dict) -> dict[str, list]:
    """Widget name -> the UI-only values the frontend stores after that widget's value: its own
    (``widget_extras``), plus, after the last widget, the upload widget's (``upload_extras`` of the
    first required upload combo: the frontend adds an "upload" input that is in no ``input_order``,
    so its widgets come after all the others -- LTX-2 Load Audio: audio, start_s, duration_s,
    audioUI, upload)."""
    specs = [s for s in input_specs(info) if is_widget(s[1], s[2])]
    out = {name: widget_extras(options) for name, _kind, options, _opt in specs}
    upload = next((upload_extras(s[2]) for s in specs if not s[3] and upload_extras(s[2])), [])
    if upload:
        out[specs[-1][0]] = out[specs[-1][0]] + upload
    return out


def default_of(kind: str, options: dict):
    if "default" in options:
        return options["default"]
    if kind == "COMBO":
        choices = options.get("options") or []
        return choices[0] if choices else ""
    return {"INT": 0, "FLOAT": 0.0, "STRING": "", "BOOLEAN": False}.get(kind)


def _schema(object_info: dict, class_type: str, node_id: str) -> dict:
    if class_type not in object_info:
        raise KeyError(f"node {node_id}: {class_type!r} is not in /object_info (is the node pack that defines it loaded?)")
    return object_info[class_type]


# ----------------------------------------------------------------------------- layout
def _depths(prompt: dict) -> dict[str, int]:
    """Column of each node: the longest chain of links that leads to it."""
    depth: dict[str, int] = {}

    def visit(node_id: str, trail: tuple) -> int:
        if node_id in depth:
            return depth[node_id]
        if node_id in trail:
            raise ValueError(f"the prompt has a cycle through node {node_id}")
        sources = [v[0] for v in prompt[node_id]["inputs"].values() if is_link(v)]
        depth[node_id] = 1 + max((visit(s, trail + (node_id,)) for s in sources), default=-1)
        return depth[node_id]

    for node_id in prompt:
        visit(node_id, ())
    return depth


def _height(n_sockets: int, widgets: list[tuple[str, dict]]) -> int:
    tall = sum(120 for kind, opts in widgets if kind == "STRING" and opts.get("multiline"))
    return 40 + 22 * n_sockets + 26 * len(widgets) + tall


def _sort_key(node_id: str):
    return (0, int(node_id)) if node_id.isdigit() else (1, node_id)


def _note_height(text: str) -> int:
    """Height of a Note showing ``text`` at NOTE_WIDTH (about 7 px per character, 17 px per line)."""
    per_line = max(1, (NOTE_WIDTH - 30) // 7)
    lines = sum(max(1, -(-len(line) // per_line)) for line in text.split("\n"))
    return 40 + 17 * lines


def group_of(node: dict, info: dict) -> str:
    """The layout group of an API node: ``_meta.group`` if set, else its role from the schema."""
    meta = node.get("_meta") or {}
    if meta.get("group"):
        return str(meta["group"])
    kind, category = node["class_type"], str(info.get("category", ""))
    if info.get("output_node") or kind in ("OpenLTXDecode",):
        return "Output"
    if "Loader" in kind or category.endswith("/loaders") or category == "loaders":
        return "Models"
    if category.endswith("/text"):
        return "Prompt"
    if kind.startswith(("OpenLTXLoad", "OpenLTXEncode", "Load")) or category.endswith("/audio") or category == "image":
        return "Inputs"
    return "Sampling"


def _group_order(names) -> list[str]:
    known = [g for g in GROUPS if g in names]
    return known + sorted(set(names) - set(GROUPS))


def layout(order: list[str], depth: dict[str, int], groups: dict[str, str], heights: dict[str, int],
           top: int) -> tuple[dict[str, list[int]], list[dict]]:
    """Positions ``{node_id: [x, y]}`` and LiteGraph groups for nodes of the given heights.

    Groups stand side by side (``GROUPS`` order) from ``x = 0``, their title bars at ``top``;
    inside a group, one column per graph depth that occurs in it, nodes stacked by id.
    """
    positions: dict[str, list[int]] = {}
    ui_groups = []
    x = 0
    for gid, name in enumerate(_group_order(set(groups.values())), start=1):
        members = [n for n in order if groups[n] == name]
        columns = sorted({depth[n] for n in members})
        y0 = top + GROUP_HEADER + GROUP_PAD + TITLE_HEIGHT
        bottom = y0
        for col, d in enumerate(columns):
            y = y0
            for n in (m for m in members if depth[m] == d):
                positions[n] = [x + GROUP_PAD + col * COLUMN_WIDTH, y]
                y += heights[n] + NODE_GAP
            bottom = max(bottom, y - NODE_GAP)
        width = GROUP_PAD * 2 + (len(columns) - 1) * COLUMN_WIDTH + NODE_WIDTH
        ui_groups.append({"id": gid, "title": name, "bounding": [x, top, width, bottom + GROUP_PAD - top],
                          "color": GROUPS.get(name, "#444"), "font_size": GROUP_FONT, "flags": {}})  # fmt: skip
        x += width + GROUP_GAP
    return positions, ui_groups


# ----------------------------------------------------------------------------- API -> UI
def model_hints(prompt: dict) -> list[dict]:
    """``[{name, url, directory}]`` of the published single files the prompt's widgets name."""
    seen, hints = set(), []
    for node in prompt.values():
        for value in node["inputs"].values():
            if isinstance(value, str) and value in model_catalog.FILES and value not in seen:
                seen.add(value)
                f = model_catalog.FILES[value]
                hints.append({"name": value, "url": f.url, "directory": f.model_folder})
    return hints


def named_folders(prompt: dict) -> list[str]:
    """The published Hugging Face folders (``"<name>/"``) the prompt's widgets name."""
    values = [v for n in prompt.values() for v in n["inputs"].values() if isinstance(v, str)]
    return sorted({v for v in values if v in model_catalog.FOLDERS})


def download_presets(prompt: dict) -> list[str]:
    """The ``tools/download_models.py`` presets that fetch every published file the prompt names."""
    names = [h["name"] for h in model_hints(prompt)] + named_folders(prompt)
    return list(dict.fromkeys(model_catalog.preset_for(n) for n in names))


def model_note(prompt: dict) -> str:
    """Text of the Note node: which file goes into which ComfyUI model folder, and how to fetch them."""
    lines = ["Model files (official Lightricks / Google names) and the ComfyUI folder each goes in:"]
    for hint in model_hints(prompt):
        lines.append(f"- models/{hint['directory']}/{hint['name']}\n  {hint['url']}")
    for name in named_folders(prompt):
        first = model_catalog.FOLDERS[name][0]
        lines.append(f"- models/{first.model_folder}/{name}  (the whole folder: config, model-*.safetensors, "
                     f"tokenizer.model; gated: accept Google's licence)\n  {model_catalog.repo_page(first.repo)}")  # fmt: skip
    if any(model_catalog.FILES[h["name"]].repo == model_catalog.LTX25_REPO for h in model_hints(prompt)):
        lines.append(f"{model_catalog.LTX25_REPO} is gated: accept its licence at "
                     f"{model_catalog.repo_page(model_catalog.LTX25_REPO)} first (downloads then need your HF token).")  # fmt: skip
    if named_folders(prompt):  # Gemma 3 (an LTX-2.5 workflow names its Gemma 4 file instead)
        singles = [model_catalog.PRESETS[p].files[0] for p in ("gemma-3-12b-bf16", "gemma-3-12b-fp8", "gemma-3-12b-fp4")]
        lines.append("A single-file Gemma 3 12B in models/text_encoders/ works too: "
                     + ", ".join(f.name for f in singles) + f" ({singles[0].repo}).")  # fmt: skip
    lines.append("Download them from the OpenLTX folder (custom_nodes/<pack>): python tools/download_models.py "
                 + " ".join(download_presets(prompt)))  # fmt: skip
    return "\n".join(lines)


def api_to_ui(prompt: dict, object_info: dict, *, description: str = "", workflow_id: str | None = None) -> dict:
    """The UI workflow of an API ``prompt`` (node ids kept; a Note node is added with id max+1)."""
    if not all(k.isdigit() for k in prompt):
        raise ValueError("API node ids must be integers (as strings) to become UI node ids")
    depth = _depths(prompt)
    order = sorted(prompt, key=lambda k: (depth[k], _sort_key(k)))
    nodes: dict[str, dict] = {}
    links: list[list] = []
    groups: dict[str, str] = {}
    hints = {h["name"]: h for h in model_hints(prompt)}
    note_text = (description.strip() + "\n\n" if description.strip() else "") + model_note(prompt)
    note_height = _note_height(note_text)

    for rank, node_id in enumerate(order):
        node = prompt[node_id]
        info = _schema(object_info, node["class_type"], node_id)
        inputs, widgets_values, widgets, models = [], [], [], []
        extras = extras_after(info)
        for name, kind, options, optional in input_specs(info):
            value = node["inputs"].get(name)
            if is_widget(kind, options):
                widgets.append((kind, options))
                linked = is_link(value)
                widgets_values.append(default_of(kind, options) if linked or value is None else value)
                widgets_values.extend(extras[name])
                if isinstance(value, str) and value in hints:
                    models.append(hints[value])
                if linked:
                    inputs.append({"name": name, "type": kind, "widget": {"name": name}, "link": value})
            else:
                socket = {"name": name, "type": kind, "link": value if is_link(value) else None}
                if optional:
                    socket["shape"] = 7
                inputs.append(socket)
        unknown = sorted(set(node["inputs"]) - {s[0] for s in input_specs(info)})
        if unknown:
            raise KeyError(f"node {node_id} ({node['class_type']}): inputs {unknown} are not in its schema")
        names = info.get("output_name") or info.get("output", [])
        outputs = [{"name": n, "type": t, "links": [], "slot_index": i}
                   for i, (n, t) in enumerate(zip(names, info.get("output", [])))]  # fmt: skip
        height = _height(len(inputs) + len(outputs), widgets)
        groups[node_id] = group_of(node, info)
        ui_node = {
            "id": int(node_id), "type": node["class_type"], "pos": [0, 0],
            "size": [NODE_WIDTH, height], "flags": {}, "order": rank, "mode": 0, "inputs": inputs,
            "outputs": outputs, "properties": {"Node name for S&R": node["class_type"]}, "widgets_values": widgets_values,
        }  # fmt: skip
        if models:
            ui_node["properties"]["models"] = models
        title = (node.get("_meta") or {}).get("title")
        if title and title != info.get("display_name"):
            ui_node["title"] = title
        nodes[node_id] = ui_node

    # The Note on top, the groups below it: nothing overlaps.
    positions, ui_groups = layout(order, depth, groups, {k: n["size"][1] for k, n in nodes.items()},
                                  top=note_height + GROUP_GAP)  # fmt: skip
    for node_id, pos in positions.items():
        nodes[node_id]["pos"] = pos

    # Links, numbered in node order, then filled into both ends.
    for node_id in order:
        for socket in nodes[node_id]["inputs"]:
            if socket["link"] is None:
                continue
            src, slot = socket["link"]
            if src not in nodes:
                raise KeyError(f"node {node_id} input {socket['name']!r} links to missing node {src}")
            link_id = len(links) + 1
            links.append([link_id, int(src), slot, int(node_id), nodes[node_id]["inputs"].index(socket), socket["type"]])
            nodes[src]["outputs"][slot]["links"].append(link_id)
            socket["link"] = link_id
    for node in nodes.values():
        for out in node["outputs"]:
            if not out["links"]:
                out["links"] = None

    note_id = max(int(k) for k in prompt) + 1
    note = {"id": note_id, "type": "Note", "pos": [0, 0], "size": [NOTE_WIDTH, note_height], "flags": {},
            "order": len(order), "mode": 0, "inputs": [], "outputs": [], "properties": {},
            "widgets_values": [note_text], "color": "#432", "bgcolor": "#653"}  # fmt: skip
    all_nodes = [nodes[k] for k in order] + [note]
    return {
        "id": workflow_id or str(uuid.uuid4()), "revision": 0, "last_node_id": note_id, "last_link_id": len(links),
        "nodes": all_nodes, "links": links, "groups": ui_groups, "config": {},
        "extra": {"ds": {"scale": 0.8, "offset": [60, 60]}}, "version": 0.4,
    }  # fmt: skip


# ----------------------------------------------------------------------------- UI -> API
def ui_to_api(workflow: dict, object_info: dict) -> dict:
    """The API prompt a UI workflow runs as (frontend-only nodes such as Note are dropped)."""
    link_src = {link[0]: (str(link[1]), link[2]) for link in workflow["links"]}
    prompt = {}
    for node in workflow["nodes"]:
        if node["type"] in ("Note", "MarkdownNote") or node.get("mode", 0) in (2, 4):
            continue
        info = _schema(object_info, node["type"], str(node["id"]))
        linked = {s["name"]: link_src[s["link"]] for s in node.get("inputs", []) if s.get("link") is not None}
        values = list(node.get("widgets_values") or [])
        inputs = {}
        extras = extras_after(info)
        for name, kind, options, optional in input_specs(info):
            if is_widget(kind, options):
                if not values and optional:  # saved before the node gained this input: the frontend keeps its default
                    inputs[name] = list(linked[name]) if name in linked else default_of(kind, options)
                    continue
                if not values:
                    raise ValueError(f"node {node['id']} ({node['type']}): widgets_values ends before {name!r}")
                value = values.pop(0)
                del values[: len(extras[name])]
                inputs[name] = list(linked[name]) if name in linked else value
            elif name in linked:
                inputs[name] = list(linked[name])
        if values:
            raise ValueError(f"node {node['id']} ({node['type']}): {len(values)} widget values left over: {values}")
        entry = {"class_type": node["type"], "inputs": inputs}
        if node.get("title"):
            entry["_meta"] = {"title": node["title"]}
        prompt[str(node["id"])] = entry
    return prompt


# ----------------------------------------------------------------------------- object_info sources
def fetch_object_info(url: str) -> dict:
    with urllib.request.urlopen(url.rstrip("/") + "/object_info", timeout=60) as resp:
        return json.loads(resp.read())


def object_info_from_fresh_server() -> dict:
    """Start a headless ComfyUI with the pack (tests/comfy_host.py), read /object_info, stop it."""
    import os

    sys.path.insert(0, str(REPO_ROOT / "tests"))
    from comfy_host import ComfyServer

    comfy = Path(os.environ.get("COMFYUI_PATH", "").strip() or REPO_ROOT / ".comfyui")
    with ComfyServer(comfy, python=sys.executable) as server:
        return server.object_info()


def shipped_descriptions() -> dict[str, str]:
    """First paragraph under each ``## <file>.json`` heading of workflows/README.md."""
    text = (SHIPPED_UI_DIR / "README.md").read_text(encoding="utf-8")
    out, current, lines = {}, None, []
    for line in text.splitlines() + ["## end"]:
        if line.startswith("## "):
            if current:
                out[current] = " ".join(lines).strip()
            name = line[3:].strip().strip("`")
            current, lines = (name[:-5] if name.endswith(".json") else None), []
        elif current and (line.strip() or not lines):
            if line.strip():
                lines.append(line.strip())
        elif current and lines and not line.strip():
            out[current] = " ".join(lines).strip()
            current = None
    return out


def build_shipped(object_info: dict) -> list[Path]:
    """Regenerate workflows/<name>.json from every tests/workflows_api/<name>.json."""
    descriptions = shipped_descriptions()
    written = []
    for api_file in sorted(SHIPPED_API_DIR.glob("*.json")):
        prompt = json.loads(api_file.read_text(encoding="utf-8"))
        name = api_file.stem
        wf_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"openltx/workflows/{name}"))  # stable across rebuilds
        ui = api_to_ui(prompt, object_info, description=descriptions.get(name, ""), workflow_id=wf_id)
        out = SHIPPED_UI_DIR / f"{name}.json"
        out.write_text(json.dumps(ui, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
        written.append(out)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("api", nargs="?", help="API-format prompt (.json)")
    parser.add_argument("out", nargs="?", help="UI-format workflow to write (.json)")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--server", help="URL of a running ComfyUI that has the pack loaded")
    source.add_argument("--object-info", help="a saved /object_info JSON file")
    parser.add_argument("--shipped", action="store_true", help="rebuild workflows/*.json from tests/workflows_api/")
    parser.add_argument("--description", default="", help="text put above the model list in the Note node")
    args = parser.parse_args(argv)
    if not args.shipped and not (args.api and args.out):
        parser.error("give API.json and OUT.json, or --shipped")
    if args.object_info:
        object_info = json.loads(Path(args.object_info).read_text(encoding="utf-8"))
    elif args.server:
        object_info = fetch_object_info(args.server)
    else:
        object_info = object_info_from_fresh_server()
    if args.shipped:
        for path in build_shipped(object_info):
            print(path.relative_to(REPO_ROOT))
        return 0
    prompt = json.loads(Path(args.api).read_text(encoding="utf-8"))
    ui = api_to_ui(prompt, object_info, description=args.description)
    Path(args.out).write_text(json.dumps(ui, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
