"""What differs between supported ComfyUI versions and how the pack meets it (in-process).

* current ComfyUI swaps ``comfy.model_patcher.CoreModelPatcher`` for ``ModelPatcherDynamic``
  (dynamic VRAM) on NVIDIA; the pack's MODEL and auxiliary models are classic ``ModelPatcher``s
  on every host (their quantized layers and block streaming manage memory themselves), also
  after a clone, so dynamic VRAM never handles a layer it does not know;
* ``tools/host_imports.py`` reads which third-party modules a host imports at start-up (make
  setup installs torchaudio, and the torch that has it, only for a host that needs it).
"""

from __future__ import annotations

import subprocess
import sys

import comfy.model_patcher
import pytest

from openltx.host import aux_models, model_loading


@pytest.fixture(scope="module")
def bundle(repo_root, tmp_path_factory):
    path = tmp_path_factory.mktemp("hostver") / "ltx2-tiny.safetensors"
    proc = subprocess.run([sys.executable, str(repo_root / "tools" / "make_tiny_checkpoint.py"), "--version", "2.0",
                           "--out", str(path), "--components", "all"], capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return path


def test_pack_patchers_stay_classic_when_the_host_enables_dynamic_vram(bundle, monkeypatch):
    class DynamicStandIn(comfy.model_patcher.ModelPatcher):  # what main.py swaps in on NVIDIA
        def is_dynamic(self):
            return True

    monkeypatch.setattr(comfy.model_patcher, "CoreModelPatcher", DynamicStandIn, raising=False)
    model = model_loading.load_ltx2_model(str(bundle))
    video, audio = aux_models.load_vae_file(str(bundle), "fp32")
    for patcher in (model, model.clone(), video.patcher, audio.patcher):
        assert type(patcher) is comfy.model_patcher.ModelPatcher, type(patcher)
        assert not getattr(patcher, "is_dynamic", lambda: False)()


def test_host_imports_tells_which_host_needs_torchaudio(repo_root, comfy_path, tmp_path):
    tool = repo_root / "tools" / "host_imports.py"
    out = subprocess.run([sys.executable, str(tool), str(comfy_path)], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    names = set(out.stdout.split())
    assert {"torch", "torchvision", "aiohttp", "yaml"} <= names  # what every ComfyUI server imports
    # A tiny host whose start-up chain imports torchaudio unguarded, and one that guards it.
    for guarded, expected in ((False, "yes"), (True, "no")):
        host = tmp_path / ("guarded" if guarded else "plain")
        (host / "comfy").mkdir(parents=True)
        (host / "main.py").write_text("import comfy.sd\n")
        (host / "comfy" / "__init__.py").write_text("")
        body = "try:\n    import torchaudio\nexcept ImportError:\n    torchaudio = None\n" if guarded else \
            "import torchaudio\n"
        (host / "comfy" / "sd.py").write_text(body)
        answer = subprocess.run([sys.executable, str(tool), str(host), "torchaudio"], capture_output=True, text=True,
                                timeout=60).stdout.strip()
        assert answer == expected, (guarded, answer)
