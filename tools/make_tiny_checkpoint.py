"""Write a tiny LTX-2 checkpoint: published key names and header, random weights (~0.2 MB transformer-only, ~16 MB bundle).

    python tools/make_tiny_checkpoint.py --version 2.3 --out tiny.safetensors
    python tools/make_tiny_checkpoint.py --version 2.0 --out t.safetensors --components transformer --bare
    python tools/make_tiny_checkpoint.py --version 2.3 --out t.safetensors --components transformer+connectors \\
        --prefix diffusion_model. --metadata none
    python tools/make_tiny_checkpoint.py --version 2.3 --out t.gguf --format gguf --qtype Q8_0 --gguf-config none

``--components all`` writes the single-file bundle (transformer, text connectors and projection,
video VAE, audio VAE, vocoder); ``transformer`` only the transformer, as placed in ComfyUI's
diffusion_models folder; ``transformer+connectors`` the transformer with its text connectors.
``--prefix`` / ``--bare`` set the transformer's key prefix (``model.diffusion_model.`` by default).
``--metadata``: ``published`` (the header config, plus ``model_version`` for 2.3, as the
published files), ``config`` (config only) or ``none`` (no metadata, as many repacks).  The
config is the published one with the shape keys scaled down.  ``--format gguf`` writes the
transformer (``--components transformer+connectors``: with connectors) as community GGUF
conversions do (bare keys, city96's type rules, ``--qtype`` for the block Linears, the config
in the ``--gguf-config`` KV or none).  ``--heads 32`` uses the released head count (for 2.0 files
without a config, whose tensors do not state it).  Prints one JSON line describing the file.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # `import model_loaders` from the repo root

import torch  # noqa: E402

from model_loaders.tiny_layouts import (  # noqa: E402
    COMPONENT_SETS,
    METADATA_KINDS,
    TINY_HEADS,
    VERSIONS,
    write_tiny_checkpoint,
    write_tiny_gguf,
)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
PREFIXES = ("model.diffusion_model.", "diffusion_model.", "")
GGUF_TYPES = ("F32", "BF16", "F16", "Q8_0", "Q6_K", "Q5_K", "Q5_0", "Q4_K", "Q4_0")
GGUF_CONFIG = {"config": "config", "openltx.config": "openltx.config", "none": None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--version", choices=VERSIONS, required=True, help="LTX-2 version whose layout to write")
    parser.add_argument("--out", required=True, help="output .safetensors / .gguf path")
    parser.add_argument("--components", choices=tuple(COMPONENT_SETS), default="all")
    parser.add_argument("--prefix", choices=PREFIXES, default=None,
                        help="key prefix of the transformer (default model.diffusion_model.)")
    parser.add_argument("--bare", action="store_true", help="keys without a prefix (same as --prefix '')")
    parser.add_argument("--metadata", choices=METADATA_KINDS, default="published", help="header metadata to write")
    parser.add_argument("--heads", type=int, choices=sorted(TINY_HEADS), default=2, help="attention heads per stream")
    parser.add_argument("--format", choices=("safetensors", "gguf"), default="safetensors")
    parser.add_argument("--qtype", choices=GGUF_TYPES, default="Q8_0", help="GGUF: type of the block Linears")
    parser.add_argument("--gguf-config", choices=tuple(GGUF_CONFIG), default="config",
                        help="GGUF: the KV holding the config, or none")
    parser.add_argument("--seed", type=int, default=0, help="random seed of the weights")
    parser.add_argument("--dtype", choices=tuple(DTYPES), default="float32", help="dtype of the stored weights")
    args = parser.parse_args(argv)
    prefix = "" if args.bare else args.prefix
    if args.bare and args.prefix not in (None, ""):
        parser.error("--bare and --prefix disagree")
    if prefix not in (None, PREFIXES[0]) and args.components == "all":
        parser.error("the bundle keeps the model.diffusion_model. prefix: use --components transformer[+connectors]")
    if args.format == "gguf" and args.components == "all":
        parser.error("GGUF files hold the transformer: use --components transformer or transformer+connectors")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if args.format == "gguf":
        tensors = write_tiny_gguf(
            out, args.version, qtype=args.qtype, config_key=GGUF_CONFIG[args.gguf_config],
            connectors=args.components == "transformer+connectors", seed=args.seed, heads=args.heads,
            source_dtype=DTYPES[args.dtype],
        )  # fmt: skip
    else:
        tensors = write_tiny_checkpoint(
            out, args.version, args.components, seed=args.seed, dtype=DTYPES[args.dtype], prefix=prefix,
            metadata=args.metadata, heads=args.heads,
        )  # fmt: skip
    summary = {
        "file": os.fspath(out),
        "version": args.version,
        "format": args.format,
        "components": args.components,
        "keys": len(tensors),
        "params": sum(t.numel() for t in tensors.values()),
        "size": out.stat().st_size,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
