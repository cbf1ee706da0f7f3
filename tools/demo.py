"""One-command demo: a headless ComfyUI with OpenLTX renders the text-to-video workflow to an mp4.

    make demo                                   # tiny random model (noise), runs on any CPU
    make demo PROMPT="a red fox in the snow"
    MODELS_DIR=/data/ltx2 make demo             # the real LTX-2 files (needs a large GPU)
    python tools/demo.py --prompt "..." [--models-dir DIR] [--output-dir DIR]

Steps: start ComfyUI (the host ``make setup`` provisioned) with this pack loaded, on a free
port, in a throwaway base directory (``tests/comfy_host.py`` does the launching); queue the API
twin of ``workflows/ltx2_t2v.json`` (``tests/workflows_api/ltx2_t2v.json``); print each node as
it runs and the sampler's step progress (ComfyUI's websocket); print the mp4's path; stop the
server by its pid - also on Ctrl-C or an error.

Without ``MODELS_DIR`` the demo writes tiny random checkpoints (LTX-2 layout, random weights)
and a tiny random Gemma, and renders a small clip from them: the result is noise, it only shows
that the whole graph runs.  With ``MODELS_DIR`` (a ComfyUI-style ``models`` folder with
``checkpoints/``, ``text_encoders/``, ... or one flat folder holding the files) the official files
named in the workflow are used at the workflow's own settings.

``tiny_prompt`` and ``write_tiny_models`` are also what tests/test_workflows.py runs the shipped
workflows with.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
T2V_API = REPO_ROOT / "tests" / "workflows_api" / "ltx2_t2v.json"
DEFAULT_PROMPT = ("A red fox trots through fresh snow in a quiet pine forest at dawn, its breath steaming in the "
                  "cold air; soft wind and the crunch of paws on snow.")  # fmt: skip

# Official file -> (ComfyUI model folder, tiny stand-in written by write_tiny_models).
TINY_FILES = {
    "ltx-2-19b-dev.safetensors": ("checkpoints", "ltx-2-tiny-random.safetensors"),
    "ltx-2-19b-distilled.safetensors": ("checkpoints", "ltx-2-tiny-random.safetensors"),
    "gemma-3-12b-it-qat-q4_0-unquantized/": ("text_encoders", "gemma-3-tiny-random/"),
    "ltx-2-spatial-upscaler-x2-1.0.safetensors": ("latent_upscale_models", "ltx-2-tiny-upscaler-x2.safetensors"),
    "ltx-2-19b-distilled-lora-384.safetensors": ("loras", "ltx-2-tiny-lora.safetensors"),
}
TINY_FRAMES = 9
TINY_STEPS = 2


def _repo_imports() -> None:
    """Make ``model_loaders`` (repo root) and ``comfy_host`` / ``tiny_gemma`` (tests/) importable."""
    for path in (REPO_ROOT, REPO_ROOT / "tests"):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


# ----------------------------------------------------------------------------- tiny models
def write_tiny_models(model_dirs: dict[str, Path], *, seed: int = 0) -> list[Path]:
    """Tiny random stand-ins of every file in TINY_FILES into ComfyUI model folders.

    The checkpoint is an LTX-2.0 bundle in the official layout (transformer, text connectors,
    VAEs, vocoder); Gemma is a 2-layer, 12-wide Gemma 3 Hugging Face folder with a tokenizer.
    """
    _repo_imports()
    from model_loaders.tiny_layouts import write_tiny_checkpoint
    from model_loaders.upsampler_loading import tiny_upsampler_config, write_tiny_upsampler

    import tiny_gemma

    written = []
    for folder, name in sorted(set(TINY_FILES.values()), key=lambda v: v[0] == "loras"):
        path = Path(model_dirs[folder]) / name.rstrip("/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            continue
        if folder == "checkpoints":
            write_tiny_checkpoint(path, "2.0", "all", seed=seed)
        elif folder == "text_encoders":
            tiny_gemma.write_hf_dir(tiny_gemma.tiny_text_model(seed=seed), path)
        elif folder == "latent_upscale_models":
            write_tiny_upsampler(path, tiny_upsampler_config("spatial"), seed=seed)
        elif folder == "loras":
            from model_loaders.lora_file import write_tiny_lora

            write_tiny_lora(path, _tiny_transformer_weights(model_dirs), seed=seed)
        written.append(path)
    return written


def _tiny_transformer_weights(model_dirs: dict[str, Path]) -> dict:
    """Bare transformer keys -> tensors of the tiny checkpoint (what the tiny LoRA patches)."""
    from model_loaders import read_checkpoint
    from model_loaders.layouts import TRANSFORMER_PREFIX
    from safetensors.torch import load_file

    folder, name = TINY_FILES["ltx-2-19b-dev.safetensors"]
    path = Path(model_dirs[folder]) / name
    keys = set(read_checkpoint(path).components["transformer"])
    sd = load_file(str(path))
    return {k[len(TRANSFORMER_PREFIX):]: sd[k] for k in keys if k.startswith(TRANSFORMER_PREFIX)}


def tiny_prompt(prompt: dict) -> dict:
    """A copy of an API prompt that runs in seconds on tiny models.

    Official file names -> the tiny stand-ins; a 64×64 px output (128×128 after a two-stage graph's
    ×2 upscale); 9 frames, with keyframe indices and retake windows scaled to match; at most 2 steps of
    the LTX-2 scheduler; STG on block 1 (the tiny model has 2); Gemma in fp32 (CPU).  The graph, guidance and sigma lists are unchanged.
    """
    out = copy.deepcopy(prompt)
    two_stage = any(n["class_type"] == "OpenLTXLatentUpscale" for n in out.values())
    frames = [n["inputs"]["frames"] for n in out.values() if n["class_type"] == "OpenLTXEmptyLatent"]
    full_frames = frames[0] if frames else TINY_FRAMES
    time_scale = (TINY_FRAMES - 1) / max(1, full_frames - 1)

    def side(pixels: int) -> int:
        # One stage: 64 px.  Two stages: stage 1 (< 1024 px) at 64, the upscaled stage 2 at 128
        # (the tiny VAE cannot encode images smaller than 64 px).
        return 128 if two_stage and pixels >= 1024 else 64

    for node in out.values():
        inputs, kind = node["inputs"], node["class_type"]
        for name, value in list(inputs.items()):
            if isinstance(value, str) and value in TINY_FILES:
                inputs[name] = TINY_FILES[value][1]
        if kind == "OpenLTXEmptyLatent":
            inputs["width"], inputs["height"] = side(inputs["width"]), side(inputs["height"])
            inputs["frames"] = TINY_FRAMES
        elif kind == "OpenLTXEncodeImage" and inputs.get("width"):
            inputs["width"], inputs["height"] = side(inputs["width"]), side(inputs["height"])
        elif kind == "OpenLTXKeyframe":
            inputs["frame_index"] = round(inputs["frame_index"] * time_scale)
        elif kind == "OpenLTXRetake":
            inputs["start_s"] = round(inputs["start_s"] * time_scale, 4)
            inputs["end_s"] = round(inputs["end_s"] * time_scale, 4)
        elif kind in ("OpenLTXScheduler", "KSampler", "BasicScheduler") and isinstance(inputs.get("steps"), int):
            inputs["steps"] = min(inputs["steps"], TINY_STEPS)
        elif kind == "OpenLTXTextEncoderLoader":
            inputs["dtype"] = "fp32"
        elif kind == "OpenLTXMultimodalGuider":
            for name in ("video_stg_blocks", "audio_stg_blocks"):  # the tiny transformer has 2 blocks
                if name in inputs:
                    inputs[name] = "1"
    return out


# ----------------------------------------------------------------------------- real models
MODEL_FOLDERS = ("checkpoints", "diffusion_models", "text_encoders", "latent_upscale_models", "loras", "vae")


def models_yaml(models_dir: Path, path: Path) -> Path:
    """An extra_model_paths.yaml mapping every model folder to DIR/<folder> and DIR itself."""
    lines = ["openltx_demo_models:"]
    for folder in MODEL_FOLDERS:
        lines += [f"  {folder}: |", f"    {models_dir / folder}", f"    {models_dir}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def missing_real_files(prompt: dict, models_dir: Path) -> list[str]:
    """The official files the prompt names that are in neither DIR/<folder>/ nor DIR/."""
    missing = []
    for name, (folder, _) in TINY_FILES.items():
        if not any(v == name for n in prompt.values() for v in n["inputs"].values()):
            continue
        if not ((models_dir / folder / name).exists() or (models_dir / name).exists()):
            missing.append(f"{folder}/{name}")
    return missing


# ----------------------------------------------------------------------------- the server
def comfy_path() -> Path:
    env = os.environ.get("COMFYUI_PATH", "").strip()
    path = Path(env).expanduser() if env else REPO_ROOT / ".comfyui"
    if not (path / "main.py").is_file():
        raise SystemExit(f"demo: no ComfyUI at {path} (main.py missing); run `make setup` first "
                         "(or set COMFYUI_PATH to a ComfyUI checkout)")  # fmt: skip
    return path


def make_server(base_dir: Path, output_dir: Path, extra_yaml: Path | None, use_gpu: bool):
    _repo_imports()
    from comfy_host import ComfyServer

    class DemoServer(ComfyServer):
        def command(self) -> list[str]:
            cmd = super().command()
            if use_gpu:
                cmd.remove("--cpu")
            return cmd

    extra = ["--output-directory", str(output_dir)]
    if extra_yaml is not None:
        extra += ["--extra-model-paths-config", str(extra_yaml)]
    return DemoServer(comfy_path(), base_dir=base_dir, python=sys.executable, extra_args=tuple(extra))


async def _run_with_progress(server, prompt: dict, timeout: float) -> dict:
    """Queue the prompt and print ComfyUI's websocket events until it finishes."""
    import aiohttp

    client_id = uuid.uuid4().hex
    titles = {k: (v.get("_meta") or {}).get("title") or v["class_type"] for k, v in prompt.items()}
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(f"ws://127.0.0.1:{server.port}/ws?clientId={client_id}") as ws:
            res = server.post_prompt(prompt, client_id)
            if res.status != 200:
                raise RuntimeError(f"ComfyUI refused the prompt (HTTP {res.status}): {res.text[:3000]}")
            prompt_id = res.json()["prompt_id"]
            deadline = time.monotonic() + timeout
            last_step = None
            while True:
                try:
                    msg = await ws.receive(timeout=max(1.0, deadline - time.monotonic()))
                except asyncio.TimeoutError:
                    raise TimeoutError(f"the prompt did not finish within {timeout:.0f} s") from None
                if msg.type != aiohttp.WSMsgType.TEXT:
                    if msg.type in (aiohttp.WSMsgType.CLOSED, aiohttp.WSMsgType.ERROR):
                        break
                    continue  # binary frames are latent previews
                event = json.loads(msg.data)
                kind, data = event.get("type"), event.get("data", {})
                if data.get("prompt_id") not in (None, prompt_id):
                    continue
                if kind == "executing" and data.get("node") is not None:
                    print(f"  running node {data['node']}: {titles.get(str(data['node']), '?')}", flush=True)
                elif kind == "progress":
                    step = (data.get("node"), data.get("value"), data.get("max"))
                    if step != last_step:
                        print(f"    step {data.get('value')}/{data.get('max')}", flush=True)
                        last_step = step
                elif kind in ("execution_success", "execution_error", "execution_interrupted"):
                    break
                elif kind == "executing" and data.get("node") is None:
                    break
    return server.wait_for_history(prompt_id, timeout=60)


def saved_videos(entry: dict, output_dir: Path) -> list[Path]:
    paths = []
    for out in entry.get("outputs", {}).values():
        for item in out.get("images", []) + out.get("videos", []) + out.get("gifs", []):
            if str(item.get("filename", "")).endswith(".mp4"):
                paths.append(output_dir / item.get("subfolder", "") / item["filename"])
    return paths


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prompt", default=os.environ.get("PROMPT") or DEFAULT_PROMPT, help="text prompt (env PROMPT)")
    parser.add_argument("--models-dir", default=os.environ.get("MODELS_DIR") or None,
                        help="folder with the official LTX-2 files (env MODELS_DIR); without it: tiny random models")
    parser.add_argument("--output-dir", default=os.environ.get("OUTPUT_DIR") or
                        str(Path(tempfile.gettempdir()) / "openltx-demo" / "output"), help="where the mp4 is written")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the video")
    parser.add_argument("--seed", type=int, default=None, help="noise seed (default: the workflow's)")
    args = parser.parse_args(argv)

    prompt = json.loads(T2V_API.read_text(encoding="utf-8"))
    for node in prompt.values():
        if node["class_type"] == "OpenLTXTextEncode" and "positive" in (node.get("_meta") or {}).get("title", "").lower():
            node["inputs"]["prompt"] = args.prompt
        if args.seed is not None and node["class_type"] == "RandomNoise":
            node["inputs"]["noise_seed"] = args.seed
    output_dir = Path(args.output_dir).expanduser().resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    base_dir = Path(tempfile.mkdtemp(prefix="openltx-demo-"))

    extra_yaml, use_gpu = None, False
    if args.models_dir:
        models_dir = Path(args.models_dir).expanduser().resolve()
        missing = missing_real_files(prompt, models_dir)
        if missing:
            print(f"demo: MODELS_DIR={models_dir} lacks {', '.join(missing)} (looked in DIR/<folder>/ and DIR/); "
                  "see workflows/README.md for the downloads", file=sys.stderr)  # fmt: skip
            return 2
        extra_yaml = models_yaml(models_dir, base_dir / "demo_models.yaml")
        import torch

        use_gpu = torch.cuda.is_available()
        print(f"demo: real LTX-2 files from {models_dir}" + ("" if use_gpu else " - no GPU found: this will be very slow"))
    else:
        print("demo: no MODELS_DIR given - using TINY RANDOM models: the video will be noise from a random model; "
              "it only shows that the whole graph runs. Set MODELS_DIR to the official LTX-2 files for real output.")
        prompt = tiny_prompt(prompt)

    server = make_server(base_dir, output_dir, extra_yaml, use_gpu)
    # SIGTERM (e.g. from a CI runner) unwinds like Ctrl-C, so the finally below stops the server.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        if not args.models_dir:
            print("demo: writing tiny random models ...", flush=True)
            server._prepare_base_dir()
            write_tiny_models(server.model_dirs)
        print(f"demo: starting ComfyUI ({server.comfy_path}) on {server.url} ...", flush=True)
        server.start(timeout=300)
        print(f"demo: server pid {server.process.pid}; queueing {T2V_API.relative_to(REPO_ROOT)}", flush=True)
        started = time.monotonic()
        entry = asyncio.run(_run_with_progress(server, prompt, args.timeout))
        status = entry.get("status", {})
        if status.get("status_str") != "success":
            from comfy_host import history_error

            print(f"demo: the workflow failed:\n{history_error(entry)}", file=sys.stderr)
            return 1
        videos = saved_videos(entry, output_dir)
        if not videos:
            print(f"demo: the workflow finished but saved no mp4: {json.dumps(entry.get('outputs'))[:2000]}",
                  file=sys.stderr)  # fmt: skip
            return 1
        print(f"demo: done in {time.monotonic() - started:.1f} s")
        for path in videos:
            print(f"demo: video: {path}")
        return 0
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
        return 130
    except (RuntimeError, TimeoutError) as err:
        print(f"demo: {err}", file=sys.stderr)
        return 1
    finally:
        pid = server.process.pid if server.process else None
        server.stop()  # by pid, then its process group
        shutil.rmtree(base_dir, ignore_errors=True)
        if pid:
            print(f"demo: stopped ComfyUI (pid {pid})", flush=True)


if __name__ == "__main__":
    sys.exit(main())
