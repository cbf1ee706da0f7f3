"""Write a tiny LTX-2 checkpoint: official key names and header, random weights (~0.2 MB transformer-only, ~16 MB bundle).

    python tools/make_tiny_checkpoint.py --version 2.3 --out tiny.safetensors
    python tools/make_tiny_checkpoint.py --version 2.0 --out t.safetensors --components transformer --bare

``--components all`` writes the single-file bundle (transformer, text connectors and projection,
video VAE, audio VAE, vocoder); ``transformer`` only the transformer, as placed in ComfyUI's
diffusion_models folder (``--bare`` drops the ``model.diffusion_model.`` key prefix).  The
header carries the full tiny config either way.  Prints one JSON line describing the file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `import model_loaders` from the repo root

import torch  # noqa: E402

from model_loaders.tiny_layouts import VERSIONS, write_tiny_checkpoint  # noqa: E402

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", choices=VERSIONS, required=True, help="LTX-2 version whose layout to write")
    parser.add_argument("--out", required=True, help="output .safetensors path")
    parser.add_argument("--components", choices=("all", "transformer"), default="all")
    parser.add_argument("--bare", action="store_true", help="transformer only: keys without 'model.diffusion_model.'")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32", help="dtype of the stored weights")
    args = parser.parse_args(argv)
    if args.bare and args.components != "transformer":
        parser.error("--bare needs --components transformer")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tensors = write_tiny_checkpoint(
        out, args.version, args.components, seed=args.seed, dtype=DTYPES[args.dtype], bare=args.bare
    )
    summary = {
        "file": os.fspath(out),
        "version": args.version,
        "components": args.components,
        "keys": len(tensors),
        "params": sum(t.numel() for t in tensors.values()),
        "size": out.stat().st_size,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
