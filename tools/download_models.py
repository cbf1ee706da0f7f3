"""Download the published LTX-2 / LTX-2.3 model files into ComfyUI's model folders.

    python tools/download_models.py --list                       # the presets and their files (JSON)
    python tools/download_models.py ltx-2-dev gemma-3-12b-qat     # into the ComfyUI this pack sits in
    python tools/download_models.py workflows --models-dir /data/ComfyUI/models

Each preset is a set of published files (``tools/model_catalog.py``); each file goes to
``<models>/<folder>/<name>`` - checkpoints/, text_encoders/, loras/, latent_upscale_models/ -
and Google's Gemma folder to ``text_encoders/gemma-3-12b-it-qat-q4_0-unquantized/``.  Without
``--models-dir`` the models folder is the one of the ComfyUI installation the pack is in
(``<ComfyUI>/custom_nodes/<pack>/`` -> ``<ComfyUI>/models``).

Every file is fetched through huggingface_hub (progress bar; ``HF_ENDPOINT`` and ``HF_TOKEN``
honoured), checked against the sha256 the Hub publishes for it (small files: their size) and
only then moved into place; a file that fails the check is deleted, never placed.  An
interrupted transfer is retried and resumes; run the same command again to resume after a
crash.  Files already in place with the Hub's size are skipped (``--verify`` hashes them too).

Exit status: 0 when every file is in place, 1 when a file failed or the Hub could not be
reached (one line says why and what to do), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # model_catalog / hub_download next to this file

import model_catalog  # noqa: E402


def _log(message: str) -> None:
    print(message, flush=True)


def _error(message: str) -> None:
    print(f"download_models: {message}", file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                     epilog="presets: " + ", ".join(model_catalog.PRESETS))  # fmt: skip
    parser.add_argument("presets", nargs="*", metavar="PRESET", help="preset(s) to download (see --list)")
    parser.add_argument("--list", action="store_true", help="print the presets and their files as one JSON object")
    parser.add_argument("--models-dir",
                        help="ComfyUI's models folder (default: the one of the ComfyUI this pack is in)")
    parser.add_argument("--force", action="store_true", help="replace a file that is in place with another size")
    parser.add_argument("--verify", action="store_true", help="also hash the files already in place")
    parser.add_argument("--retries", type=int, default=5, help="retries of an interrupted transfer (default 5)")
    parser.add_argument("--retry-wait", type=float, default=5.0, help="seconds before the first retry, doubled after")
    args = parser.parse_args(argv)

    if args.list:
        print(json.dumps(model_catalog.listing()))
        return 0
    if not args.presets:
        parser.print_usage(sys.stderr)
        _error("name at least one preset (or --list); presets: " + ", ".join(model_catalog.PRESETS))
        return 2
    unknown = [p for p in args.presets if p not in model_catalog.PRESETS]
    if unknown:
        _error(f"unknown preset(s) {', '.join(unknown)}; presets: {', '.join(model_catalog.PRESETS)}")
        return 2

    import hub_download as hub  # huggingface_hub is imported only past this point

    hub.quiet_library_logs()

    if args.models_dir:
        models_dir = Path(args.models_dir).expanduser().resolve()
    else:
        found = hub.find_models_dir(sys.argv[0], __file__)
        if found is None:
            _error("cannot tell where ComfyUI's models folder is (this pack is not inside <ComfyUI>/custom_nodes/ "
                   "and COMFYUI_PATH is not set): pass --models-dir /path/to/ComfyUI/models")  # fmt: skip
            return 2
        models_dir = found
    _log(f"models folder: {models_dir}")

    files = list(dict.fromkeys(f for name in args.presets for f in model_catalog.PRESETS[name].files))
    failed: list[str] = []
    for i, file in enumerate(files, 1):
        _log(f"[{i}/{len(files)}] {file.repo}/{file.filename} -> {hub.destination(file, models_dir)}")
        try:
            status = hub.fetch(file, models_dir, force=args.force, verify=args.verify, retries=args.retries,
                               retry_wait=args.retry_wait, log=_log)  # fmt: skip
        except hub.FileRejected as err:
            _error(f"REJECTED {err}")
            failed.append(file.name)
            continue
        except hub.DownloadError as err:
            _error(str(err))
            hub.remove_empty_staging(models_dir)
            return 1
        except KeyboardInterrupt:
            _error("interrupted; run the same command again to resume")
            return 130
        _log(f"  {status}: {file.name}")
    hub.remove_empty_staging(models_dir)
    if failed:
        _error(f"{len(failed)} of {len(files)} file(s) not placed: {', '.join(failed)}")
        return 1
    _log(f"done: {len(files)} file(s) in place under {models_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
