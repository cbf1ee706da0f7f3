"""The pack inside a real, headless ComfyUI server (CPU).

One server per test session (the ``comfy_server`` fixture in conftest.py).
Prompts are API-format dicts posted to /prompt, results read from /history.
"""

from __future__ import annotations

import json
import re
import struct

import pytest

from comfy_host import PACK_DIR_NAME, history_error

pytestmark = pytest.mark.server

# node id -> inputs it must declare (the nodes' public contract; ids never change).
EXPECTED_NODES = {
    "OpenLTXCheckpointLoader": ("ckpt_name", "weight_dtype", "quantize", "offload"),
    "OpenLTXVAELoader": ("vae_name", "dtype"),
    "OpenLTXUpscalerLoader": ("upscaler_name", "dtype"),
    "OpenLTXTextEncoderLoader": ("text_encoder", "ltx_checkpoint", "device", "dtype", "extra_file"),
    "OpenLTXTextEncoderLora": ("text_encoder", "lora_name", "strength"),
    "OpenLTXTextEncode": ("text_encoder", "prompt", "frame_rate"),
    "OpenLTXSaveConditioning": ("conditioning", "filename_prefix"),
    "OpenLTXLoadConditioning": ("conditioning_file",),
    "OpenLTXEmptyLatent": ("width", "height", "frames", "fps", "batch_size", "streams"),
    "OpenLTXLatentUpscale": ("latent", "upscaler", "video_vae"),
    "OpenLTXDecode": ("latent", "video_vae", "audio_vae", "tiling"),
    "OpenLTXEncodeImage": ("image", "video_vae", "crf"),
    "OpenLTXEncodeAudio": ("audio", "audio_vae"),
    "OpenLTXLoadAudio": ("audio",),
    "OpenLTXSaveVideo": ("latent", "video_vae", "audio_vae", "fps", "filename_prefix"),
    "OpenLTXScheduler": ("steps", "terminal", "stretch"),
    "OpenLTXDistilledSigmas": ("stage",),
    "OpenLTXManualSigmas": ("sigmas",),
    "OpenLTXSampler": ("sampler",),
    "OpenLTXNoNoise": (),
    "OpenLTXMultimodalGuider": ("model", "positive", "negative", "preset"),
    "OpenLTXImageToVideo": ("latent", "image_latent", "strength"),
    "OpenLTXKeyframe": ("positive", "negative", "latent", "image_latent", "frame_index", "strength"),
    "OpenLTXAudioToVideo": ("latent", "audio_latent"),
    "OpenLTXRetake": ("latent", "start_s", "end_s", "fps"),
    "OpenLTXExtendVideo": ("latent", "keep_latent_frames", "frames"),
    "OpenLTXReferenceVideoGuide": ("positive", "negative", "latent", "reference_latent", "downscale_factor",
                                   "strength"),
    "OpenLTXLoraLoader": ("model", "lora_name", "strength"),
    "OpenLTXRenoise": ("latent", "sigma", "noise_seed"),
    "OpenLTXLoadVideo": ("video", "start_s", "frames", "fps", "width", "height", "frames_8k_plus_1"),
    "OpenLTXEncodeVideo": ("images", "video_vae", "width", "height", "downscale_factor", "frame_rate", "audio_vae",
                           "audio", "tiling"),
    "OpenLTXLoopingSampler": ("noise", "guider", "sampler", "sigmas", "latent", "window_frames", "overlap_frames",
                              "overlap_strength", "adain_factor", "window_prompts"),
    "OpenLTXWindowPrompts": ("text_encoder", "prompts", "frame_rate"),
    "OpenLTXJoinExtension": ("latent", "extension", "keep_latent_frames"),
    "OpenLTXCompile": ("model", "mode", "dynamic"),
    "OpenLTXAttention": ("model", "backend"),
    "OpenLTXMultiGPU": ("model", "workers", "device", "ray_address", "cfg_degree", "ulysses_degree", "ring_degree"),
    "OpenLTXQuantMatmul": ("model", "fp8_matmul", "int8_matmul", "gguf_cache_gb"),
    "OpenLTXEnhancePrompt": ("text_encoder", "prompt", "seed", "max_new_tokens", "system_prompt"),
    "OpenLTXReferenceAudio": ("model", "positive", "negative", "reference_audio", "audio_vae",
                              "identity_guidance_scale"),
    "OpenLTXSaveAudio": ("latent", "audio_vae", "filename_prefix"),
    "OpenLTXDurationHead": ("conditioning", "duration_head", "frame_rate", "min_seconds", "max_seconds"),
}


def _inputs(info: dict) -> dict[str, list]:
    """name -> spec ([type_or_options, options_dict]) for required + optional inputs."""
    sections = info.get("input", {})
    merged: dict[str, list] = {}
    for section in ("required", "optional"):
        merged.update(sections.get(section, {}) or {})
    return merged


def _input_options(spec) -> dict:
    return spec[1] if isinstance(spec, (list, tuple)) and len(spec) > 1 and isinstance(spec[1], dict) else {}


def _default_prompt_inputs(info: dict) -> dict:
    """Every required widget input at its declared default."""
    values = {}
    for name, spec in (info.get("input", {}).get("required", {}) or {}).items():
        options = _input_options(spec)
        if "default" in options:
            values[name] = options["default"]
    return values


def _startup_log(server) -> str:
    """The server log up to 'Starting server' (the part that covers imports)."""
    text = server.log_text()
    cut = text.find("Starting server")
    return text if cut < 0 else text[:cut]


@pytest.fixture(scope="module")
def object_info(comfy_server) -> dict:
    return comfy_server.object_info()


@pytest.fixture(scope="module")
def empty_latent_info(object_info) -> dict:
    assert "OpenLTXEmptyLatent" in object_info, "OpenLTXEmptyLatent is not registered"
    return object_info["OpenLTXEmptyLatent"]


# --- the pack loads --------------------------------------------------------------

def test_server_log_has_no_pack_import_failure(comfy_server):
    startup = _startup_log(comfy_server)
    excerpt = comfy_server.pack_log_excerpt(startup)
    problems = [line for line in excerpt.splitlines()
                if "IMPORT FAILED" in line or "Cannot import" in line or line.startswith("Traceback")]
    assert not problems, "the pack failed while ComfyUI started:\n" + excerpt
    assert "Unable to parse pyproject.toml" not in startup, "ComfyUI could not parse the pack's pyproject.toml"


def test_object_info_lists_the_pack_nodes(object_info):
    missing = [node for node in EXPECTED_NODES if node not in object_info]
    assert not missing, f"nodes missing from /object_info: {missing}"


def test_every_pack_node_is_known_and_has_a_help_page(comfy_server, object_info, repo_root):
    ours = sorted(k for k in object_info if k.startswith("OpenLTX"))
    unknown = [k for k in ours if k not in EXPECTED_NODES]
    assert not unknown, f"nodes without an entry in EXPECTED_NODES (add their contract): {unknown}"
    no_page = [k for k in ours if not (repo_root / "web" / "docs" / f"{k}.md").is_file()]
    assert not no_page, f"nodes without a web/docs help page: {no_page}"
    # where the frontends ask first (docs/<NodeId>/<locale>.md), served from the pack's web folder
    pack = PACK_DIR_NAME
    for k in ours:
        res = comfy_server.get(f"/extensions/{pack}/docs/{k}/en.md")
        assert res.status == 200 and res.body == (repo_root / "web" / "docs" / f"{k}.md").read_bytes(), k


@pytest.mark.parametrize("node_id", sorted(EXPECTED_NODES))
def test_node_schema_is_documented(object_info, node_id):
    assert node_id in object_info, f"{node_id} is not registered"
    info = object_info[node_id]
    assert info.get("description", "").strip(), f"{node_id} has no description"
    assert info.get("display_name", "").startswith("LTX-2"), f"{node_id} display name: {info.get('display_name')!r}"
    assert info.get("category", "").startswith("OpenLTX/"), f"{node_id} category: {info.get('category')!r}"
    inputs = _inputs(info)
    missing = [name for name in EXPECTED_NODES[node_id] if name not in inputs]
    assert not missing, f"{node_id} lacks inputs {missing}; has {sorted(inputs)}"
    untipped = [name for name, spec in inputs.items() if not str(_input_options(spec).get("tooltip", "")).strip()]
    assert not untipped, f"{node_id} inputs without a tooltip: {untipped}"


def test_empty_latent_outputs_latent(empty_latent_info):
    assert "LATENT" in empty_latent_info.get("output", []), empty_latent_info.get("output")


def _write_minimal_safetensors(path) -> None:
    """A valid safetensors file with one tiny tensor and no LTX content (stdlib only)."""
    header = json.dumps({"probe": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    header += b" " * (-len(header) % 8)
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\0\0\0\0")


def test_checkpoint_loader_lists_checkpoints_folder(comfy_server):
    # Like core's loaders, ckpt_name offers every file of the checkpoints folder.
    _write_minimal_safetensors(comfy_server.checkpoints_dir / "openltx-listing-probe.safetensors")
    info = comfy_server.object_info("OpenLTXCheckpointLoader")
    assert "OpenLTXCheckpointLoader" in info, "OpenLTXCheckpointLoader is not registered"
    spec = _inputs(info["OpenLTXCheckpointLoader"])["ckpt_name"]
    options = spec[0] if isinstance(spec[0], list) else _input_options(spec).get("options", [])
    assert "openltx-listing-probe.safetensors" in options, f"ckpt_name options: {options}"


# --- prompts -----------------------------------------------------------------------

def _empty_latent_prompt(inputs: dict) -> dict:
    # PreviewAny (core, output node, accepts any type) makes the graph have an output,
    # which ComfyUI requires before it validates anything.
    return {
        "1": {"class_type": "OpenLTXEmptyLatent", "inputs": inputs},
        "2": {"class_type": "PreviewAny", "inputs": {"source": ["1", 0]}},
    }


def test_empty_latent_rejects_width_not_multiple_of_32(comfy_server, empty_latent_info):
    inputs = _default_prompt_inputs(empty_latent_info)
    inputs["width"] = 500
    res = comfy_server.post_prompt(_empty_latent_prompt(inputs))
    assert res.status == 400, f"expected HTTP 400, got {res.status}: {res.text[:2000]}"
    body = res.json()
    assert "1" in body.get("node_errors", {}), f"no error reported for the latent node: {res.text[:2000]}"
    assert re.search(r"\b(512|480)\b", res.text), f"the error does not name 480 or 512: {res.text[:2000]}"


def test_empty_latent_runs_with_defaults(comfy_server, empty_latent_info):
    inputs = _default_prompt_inputs(empty_latent_info)
    entry = comfy_server.run_prompt(_empty_latent_prompt(inputs), timeout=120)
    assert history_error(entry) is None, history_error(entry)
