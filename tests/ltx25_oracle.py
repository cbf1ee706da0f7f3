"""The LTX-2.5 oracles, run in a subprocess: diffusers 0.42.1, transformers 5.24, comfy-kitchen 0.2.40.

``make setup`` installs them into folders of their own (``.venv/diffusers042``,
``.venv/transformers5``, ``.venv/comfy_kitchen0240``) because they cannot share the test
process: diffusers 0.42 needs huggingface_hub >= 1.32 (it comes with the transformers 5 folder)
while the venv keeps transformers 4.x and hub 0.x for ltx-core.  ``run_oracle`` writes the inputs
with ``torch.save``, runs a script with those folders first on ``PYTHONPATH`` and reads back the
``out`` dict the script fills.  Key-layout conversion (published names -> diffusers names)
happens in the scripts, i.e. in the tests, never in the pack.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

VENV = Path(__file__).resolve().parent.parent / ".venv"
DIFFUSERS = VENV / "diffusers042"
TRANSFORMERS5 = VENV / "transformers5"
COMFY_KITCHEN = VENV / "comfy_kitchen0240"
_FOLDERS = {"diffusers": (DIFFUSERS, TRANSFORMERS5), "transformers5": (TRANSFORMERS5,),
            "comfy_kitchen": (COMFY_KITCHEN,)}  # fmt: skip
_MARKERS = {DIFFUSERS: "diffusers", TRANSFORMERS5: "transformers", COMFY_KITCHEN: "comfy_kitchen"}


def require(kind: str) -> None:
    """Skip the calling test when the oracle ``kind`` is not installed (``make setup`` installs it)."""
    for folder in _FOLDERS[kind]:
        if not (folder / _MARKERS[folder]).is_dir():
            pytest.skip(f"{kind} oracle missing: no {folder / _MARKERS[folder]} (make setup installs it)")


def run_oracle(kind: str, script: str, inputs: dict, tmp_path: Path, timeout: int = 600) -> dict:
    """Run ``script`` (which reads ``inp`` and fills ``out``) under the ``kind`` oracle; return ``out``."""
    require(kind)
    tmp_path.mkdir(parents=True, exist_ok=True)
    src, dst = tmp_path / f"{kind}_in.pt", tmp_path / f"{kind}_out.pt"
    torch.save(inputs, src)
    body = (
        "import sys, torch\n"
        "torch.set_grad_enabled(False)\n"
        f"inp = torch.load({str(src)!r}, weights_only=False)\n"
        "out = {}\n" + textwrap.dedent(script) + f"\ntorch.save(out, {str(dst)!r})\n"
    )
    file = tmp_path / f"{kind}_oracle.py"
    file.write_text(body)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(str(f) for f in _FOLDERS[kind]),
               DIFFUSERS_DISABLE_REMOTE_CODE="1", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")  # fmt: skip
    proc = subprocess.run([sys.executable, str(file)], capture_output=True, text=True, env=env, timeout=timeout,
                          cwd=str(tmp_path))  # fmt: skip
    assert proc.returncode == 0, f"{kind} oracle failed:\n{proc.stderr[-4000:]}"
    return torch.load(dst, weights_only=False)


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    """``max |a - b| / max |b|`` in float64 (the figure the parity tests bound)."""
    a, b = a.double(), b.double()
    return float((a - b).abs().max() / b.abs().max().clamp_min(1e-30))
