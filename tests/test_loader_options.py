"""OpenLTXCheckpointLoader options: GGUF files in the model folders, streaming offload."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

import comfy.patcher_extension as pe

from openltx.host import offload_policy
from openltx.nodes.loaders import OpenLTXCheckpointLoader, checkpoint_options
from test_nodes_inprocess import CKPT, conditioning, empty_latent, folders, model_dirs  # noqa: F401  (fixtures)

import nodes as comfy_nodes


@pytest.fixture(scope="module")
def gguf_file(model_dirs, repo_root):
    """The tiny transformer converted to GGUF Q8_0 by tools/convert.py, in diffusion_models/."""
    src = model_dirs["diffusion_models"] / CKPT
    out = model_dirs["diffusion_models"] / "ltx2-tiny-Q8_0.gguf"
    proc = subprocess.run(
        [sys.executable, str(repo_root / "tools" / "convert.py"), str(src), "--to", "gguf", "--qtype", "Q8_0",
         "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return out


def test_gguf_files_are_listed_and_load(folders, gguf_file):  # noqa: F811
    assert gguf_file.name in checkpoint_options()
    model = OpenLTXCheckpointLoader.execute(ckpt_name=gguf_file.name, weight_dtype="default")[0]
    latent = empty_latent()
    out = comfy_nodes.common_ksampler(
        model, 1, 2, 1.0, "euler", "simple", conditioning(model, 8, 0), conditioning(model, 8, 1), latent
    )[0]["samples"]
    video, audio = out.unbind()
    assert torch.isfinite(video).all() and torch.isfinite(audio).all()


def test_offload_option_validates_and_attaches(folders):  # noqa: F811
    assert OpenLTXCheckpointLoader.validate_inputs(offload="auto") is True
    assert OpenLTXCheckpointLoader.validate_inputs(offload="8") is True
    message = OpenLTXCheckpointLoader.validate_inputs(offload="lots")
    assert isinstance(message, str) and "offload" in message
    plain = OpenLTXCheckpointLoader.execute(ckpt_name=CKPT, weight_dtype="default")[0]
    streamed = OpenLTXCheckpointLoader.execute(ckpt_name=CKPT, weight_dtype="default", offload="2")[0]

    def has_wrapper(patcher):
        wrappers = patcher.wrappers.get(pe.WrappersMP.APPLY_MODEL, {})
        return offload_policy.WRAPPER_KEY in wrappers

    assert not has_wrapper(plain) and has_wrapper(streamed)
    # On the CPU the wrapper leaves the model alone; sampling gives the same result.
    latent = empty_latent()
    pos, neg = conditioning(plain, 8, 0), conditioning(plain, 8, 1)
    a = comfy_nodes.common_ksampler(plain, 3, 2, 2.0, "euler", "simple", pos, neg, latent)[0]["samples"]
    b = comfy_nodes.common_ksampler(streamed, 3, 2, 2.0, "euler", "simple", pos, neg, latent)[0]["samples"]
    for x, y in zip(a.unbind(), b.unbind()):
        assert torch.equal(x, y)
