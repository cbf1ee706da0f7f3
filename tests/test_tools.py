"""The CLIs in tools/, run as a user would: ``python tools/X.py`` from the repository root."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def run_tool(name: str, *args) -> tuple[int, dict, str]:
    """(exit code, the one JSON object printed on stdout, stderr)."""
    proc = subprocess.run(
        [sys.executable, f"tools/{name}.py", *map(str, args)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1, f"expected one JSON line, got stdout={proc.stdout!r} stderr={proc.stderr!r}"
    return proc.returncode, json.loads(lines[0]), proc.stderr


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """Tiny files written by the CLI: the 2.3 bundle and a bare 2.0 transformer."""
    root = tmp_path_factory.mktemp("tools")
    out = {}
    for name, args in {
        "bundle": ("--version", "2.3", "--components", "all", "--seed", "1"),
        "bare": ("--version", "2.0", "--components", "transformer", "--bare"),
    }.items():
        path = root / f"{name}.safetensors"
        code, summary, _ = run_tool("make_tiny_checkpoint", *args, "--out", path)
        assert code == 0 and Path(summary["file"]) == path and path.is_file()
        out[name] = (path, summary)
    return out


def test_make_tiny_checkpoint(made):
    path, summary = made["bundle"]
    assert summary["version"] == "2.3" and summary["components"] == "all"
    assert summary["size"] == path.stat().st_size < 18_000_000  # the VAEs at the real latent widths
    bare, summary = made["bare"]
    assert summary["size"] < 1_000_000 and summary["keys"] > 100


def test_inspect_bundle_with_load(made):
    path, made_summary = made["bundle"]
    code, out, err = run_tool("inspect_checkpoint", path, "--load")
    assert code == 0, out
    assert (out["family"], out["version"], out["model_version"]) == ("ltx2", "2.3", "2.3.0")
    assert out["file"] == str(path) and out["size"] == path.stat().st_size
    assert list(out["components"]) == [
        "transformer", "text_connectors", "text_projection", "video_vae", "audio_vae", "vocoder"
    ]  # fmt: skip
    assert out["total_params"] == made_summary["params"] == sum(c["params"] for c in out["components"].values())
    assert sum(c["keys"] for c in out["components"].values()) == made_summary["keys"] == out["dtypes"]["F32"]
    t = out["transformer"]
    assert (t["num_layers"], t["video_dim"], t["audio_dim"]) == (2, 16, 8)
    assert t["gated_attention"] and t["cross_attention_adaln"] and not t["caption_projection"]
    assert out["load"]["transformer"] == "ok"
    assert out["load"] == {name: "ok" for name in out["components"]}  # every component builds strictly


def test_inspect_bare_transformer(made):
    path, _ = made["bare"]
    code, out, _ = run_tool("inspect_checkpoint", path)
    assert code == 0 and out["version"] == "2.0" and "load" not in out
    assert list(out["components"]) == ["transformer"] and out["transformer"]["key_prefix"] == ""


def test_inspect_errors(tmp_path, made):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model at all, just text" * 10)
    code, out, err = run_tool("inspect_checkpoint", junk)
    assert code == 1 and set(out) == {"file", "error"} and "expected a .safetensors file" in out["error"]
    assert "Traceback" not in err

    # A file whose header reads fine but whose weights do not match: --load reports the error.
    from safetensors import safe_open
    from safetensors.torch import save_file

    path, _ = made["bare"]
    with safe_open(str(path), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys() if k != "proj_out.bias"}
        meta = f.metadata()
    broken = tmp_path / "broken.safetensors"
    save_file(tensors, str(broken), metadata=meta)
    code, out, err = run_tool("inspect_checkpoint", broken, "--load")
    assert code == 1 and "'proj_out.bias'" in out["load"]["transformer"] and "missing" in out["load"]["transformer"]
    assert "Traceback" not in err


# ------------------------------------------------------------------------------ layouts and provenance
LAYOUTS = {
    # name: (make_tiny_checkpoint args, expected kind, format, has config)
    "connectors-no-metadata": (("--version", "2.3", "--components", "transformer+connectors", "--prefix",
                                "diffusion_model.", "--metadata", "none"), "transformer + text connectors",
                               "safetensors", False),
    "gguf-config": (("--version", "2.0", "--components", "transformer", "--format", "gguf", "--heads", "32"),
                    "transformer-only", "gguf", True),
    "gguf-none": (("--version", "2.0", "--components", "transformer", "--format", "gguf", "--heads", "32",
                   "--gguf-config", "none"), "transformer-only", "gguf", False),
}  # fmt: skip


@pytest.mark.parametrize("name", list(LAYOUTS))
def test_inspect_reports_kind_and_where_each_value_came_from(tmp_path, name):
    args, kind, fmt, has_config = LAYOUTS[name]
    path = tmp_path / (f"{name}.gguf" if fmt == "gguf" else f"{name}.safetensors")
    code, made, _ = run_tool("make_tiny_checkpoint", *args, "--out", path)
    assert code == 0 and made["format"] == fmt
    code, out, err = run_tool("inspect_checkpoint", path, "--load")
    assert code == 0, out
    assert (out["kind"], out["format"], out["has_config"]) == (kind, fmt, has_config)
    assert out["version"] == args[1] and out["version_evidence"]
    t = out["transformer"]
    sources = t["sources"]
    assert sources["num_layers"] == sources["audio_in_channels"] == "shape" and t["values"]["audio_in_channels"] == 128
    assert "audio_patchify_proj.weight" in t["shape_tensors"]["audio_in_channels"]
    numeric = "header" if has_config else "released default"
    assert sources["rope_type"] == sources["norm_eps"] == numeric and t["values"]["rope_type"] == "split"
    heads = "shape" if args[1] == "2.3" else numeric
    assert sources["num_attention_heads"] == heads
    assert out["load"]["transformer"] == "ok"
    if "text_connectors" in out["components"]:
        assert "another file" in out["load"]["text_connectors"]
    assert "Traceback" not in err


def test_inspect_names_a_contradicting_header(tmp_path):
    import json as _json

    from safetensors import safe_open
    from safetensors.torch import save_file

    src = tmp_path / "src.safetensors"
    assert run_tool("make_tiny_checkpoint", "--version", "2.0", "--components", "transformer", "--out", src)[0] == 0
    with safe_open(str(src), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        meta = f.metadata()
    config = _json.loads(meta["config"])
    config["transformer"]["num_layers"] = 48
    edited = tmp_path / "edited.safetensors"
    save_file(tensors, str(edited), metadata=dict(meta, config=_json.dumps(config)))
    code, out, err = run_tool("inspect_checkpoint", edited)
    assert code == 1 and out["kind"] == "transformer-only" and "Traceback" not in err
    assert "'num_layers'] is 48" in out["transformer"]["error"]
