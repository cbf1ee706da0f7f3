"""Sane limits of the numbers in a model file's header config, checked before anything is built.

Shapes come from the tensors (a header ``num_layers`` that disagrees with the blocks is an
error there), but some settings only the header gives size what the model *allocates when it
runs*: the audio front end's sampling rate, STFT window and hop, the vocoder's upsampling
strides, the position grid.  A header saying ``sampling_rate: 1e8`` makes encoding one second
of sound allocate 5 GB, ``hop_length: 1`` takes 160x the time and memory, an upsampling stride
larger than its kernel fails deep inside a convolution.  ``check_config`` refuses such values
with the file and the key named, before any module is built.

Every number must be finite and below ``MAX_MAGNITUDE``; the keys of ``LIMITS`` (by their last
name, in any section) must lie in their range, which holds the published LTX-2 / 2.3 / 2.5
values with a wide margin (``tests/test_hostile_inputs.py`` checks the published configs pass).
"""

from __future__ import annotations

import math
import os

from .safetensors_file import CheckpointError

MAX_MAGNITUDE = 1e12
_RATE = (1000, 192_000)
_WINDOW = (16, 16_384)
_MAX_POS = (1, 10_000_000)
# key (last path component) -> (lowest, highest) allowed value (each item for lists).
LIMITS: dict[str, tuple[float, float]] = {
    "sampling_rate": _RATE, "input_sampling_rate": _RATE, "output_sampling_rate": _RATE,
    "filter_length": _WINDOW, "win_length": _WINDOW, "n_fft": _WINDOW, "win_size": _WINDOW,
    "hop_length": (16, 16_384),
    "n_mel_channels": (1, 1024), "num_mels": (1, 1024), "mel_bins": (1, 1024),
    "mel_fmin": (0, 96_000), "mel_fmax": (0, 96_000),
    "upsample_rates": (1, 64),
    "causal_padding": (0, 4096),
    "duration": (0, 86_400),
    "max_wav_value": (1, 1e9),
    "resolution": (1, 100_000),
    "positional_embedding_max_pos": _MAX_POS, "audio_positional_embedding_max_pos": _MAX_POS,
    "connector_positional_embedding_max_pos": _MAX_POS,
    "positional_embedding_theta": (1, 1e9),
    "timestep_scale_multiplier": (0, 1e6), "av_ca_timestep_scale_multiplier": (0, 1e6),
    "num_train_timesteps": (1, 1e6), "num_embeds_ada_norm": (1, 1e6),
    "norm_eps": (0, 1),
}  # fmt: skip
_MAX_ITEMS = 100_000  # numbers looked at per config (a real one has a few hundred)


def check_config(path: str | os.PathLike, config, where: str = "the header config") -> None:
    """Raise ``CheckpointError`` naming ``path`` and the key when a number of ``config`` is not
    finite, beyond ``MAX_MAGNITUDE``, or outside its ``LIMITS`` range."""
    stack = [(config, "")]
    seen = 0
    while stack:
        value, key = stack.pop()
        if isinstance(value, dict):
            stack.extend((v, f"{key}.{k}" if key else str(k)) for k, v in value.items())
            continue
        if isinstance(value, list):
            stack.extend((v, f"{key}[{i}]") for i, v in enumerate(value))
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        seen += 1
        if seen > _MAX_ITEMS:
            raise _refuse(path, where, key, value, f"more than {_MAX_ITEMS} numbers")
        if not math.isfinite(value) or abs(value) > MAX_MAGNITUDE:
            raise _refuse(path, where, key, value, f"a finite number of magnitude at most {MAX_MAGNITUDE:g}")
        name = key.rsplit(".", 1)[-1].split("[", 1)[0]
        if name in LIMITS:
            lo, hi = LIMITS[name]
            if not lo <= value <= hi:
                raise _refuse(path, where, key, value, f"between {lo:g} and {hi:g}")


def _refuse(path, where: str, key: str, value, expected: str) -> CheckpointError:
    shown = repr(value) if len(repr(value)) < 40 else repr(value)[:40] + "..."
    return CheckpointError(
        f"{os.fspath(path)}: {where} sets {key} to {shown}; expected {expected} (every published LTX-2 file does). "
        "The header was edited or is corrupt: use the published file, or a copy whose header config was saved with "
        "these weights (a file without any config loads too)."
    )
