"""Audio decode (latent -> mel -> waveform) with full-size random weights: ours vs ltx-core 1.0.0.

    python benchmarks/audio_decode.py --version 2.0 --seconds 10 --device cuda --dtype bf16

Builds the official-size audio VAE decoder + vocoder of LTX-2.0 (HiFi-GAN, 24 kHz) or LTX-2.3
(BigVGAN-v2 + BWE, 48 kHz) from the same random weights, decodes one latent of ``--seconds``
(25 latent frames per second) with both, and prints ONE JSON line: median seconds over
``--repeats`` runs, peak memory of each, and the relative difference of the waveforms.
"""

from __future__ import annotations

import argparse
import importlib.machinery
import json
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from ltx2.audio_pipeline import decode_audio  # noqa: E402
from ltx2.audio_vae import AudioVAE  # noqa: E402
from ltx2.vocoder import build_vocoder  # noqa: E402
from model_loaders.layouts import audio_vae_layout, vocoder_layout  # noqa: E402
from model_loaders.tiny_layouts import random_tensor  # noqa: E402

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def official_config(version: str) -> dict:
    dd = {"double_z": True, "mel_bins": 64, "z_channels": 8, "resolution": 256, "in_channels": 2, "out_ch": 2,
          "ch": 128, "ch_mult": [1, 2, 4], "num_res_blocks": 2, "attn_resolutions": [],
          "mid_block_add_attention": False, "norm_type": "pixel", "causality_axis": "height"}  # fmt: skip
    audio_vae = {
        "model": {"params": {"ddconfig": dd, "sampling_rate": 16000}},
        "preprocessing": {"stft": {"filter_length": 1024, "hop_length": 160, "win_length": 1024, "causal": True},
                          "mel": {"n_mel_channels": 64, "mel_fmin": 0, "mel_fmax": 8000}},
    }  # fmt: skip
    vocoder = {"resblock": "1", "stereo": True}
    if version == "2.3":
        amp = {"resblock": "AMP1", "stereo": True, "activation": "snakebeta", "use_tanh_at_final": False,
               "use_bias_at_final": False}  # fmt: skip
        vocoder = {
            "vocoder": {**amp, "upsample_initial_channel": 1536, "upsample_rates": [5, 2, 2, 2, 2, 2],
                        "upsample_kernel_sizes": [11, 4, 4, 4, 4, 4]},
            "bwe": {**amp, "upsample_initial_channel": 512, "upsample_rates": [6, 5, 2, 2, 2],
                    "upsample_kernel_sizes": [12, 11, 4, 4, 4], "input_sampling_rate": 16000,
                    "output_sampling_rate": 48000, "hop_length": 80, "n_fft": 512, "num_mels": 64},
        }  # fmt: skip
    return {"audio_vae": audio_vae, "vocoder": vocoder}


def reference(config: dict, sd: dict, device, dtype):
    import ltx_core.loader  # noqa: F401

    if "torchaudio" not in sys.modules:  # ltx-core imports it at module top; only its mel front end needs it
        stub = types.ModuleType("torchaudio")
        stub.__spec__ = importlib.machinery.ModuleSpec("torchaudio", None)
        sys.modules["torchaudio"] = stub
    from ltx_core.model.audio_vae import audio_vae as ref_vae
    from ltx_core.model.audio_vae import model_configurator as ref_cfg

    with torch.device("meta"):
        dec = ref_cfg.AudioDecoderConfigurator.from_config(config)
        voc = ref_cfg.VocoderConfigurator.from_config(config)
    # the decoder's statistics read the file's one shared copy; everything else lives under decoder.
    dec_sd = {k: sd["audio_vae." + k if k.startswith("per_channel_statistics.") else "audio_vae.decoder." + k]
              for k in dec.state_dict()}  # fmt: skip
    dec.load_state_dict(dec_sd, strict=True, assign=True)
    voc.load_state_dict({k: sd["vocoder." + k] for k in voc.state_dict()}, strict=True, assign=True)
    if hasattr(voc, "resampler"):
        voc.resampler.to(device)
    return dec.to(device, dtype).eval(), voc.to(device, dtype).eval(), ref_vae.decode_audio


def timed(fn, device, repeats: int):
    times, out = [], None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        t = time.perf_counter()
        with torch.no_grad():
            out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - t)
    peak = torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None
    return out, sorted(times)[len(times) // 2], peak


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--version", choices=("2.0", "2.3"), default="2.0")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--dtype", choices=tuple(DTYPES), default="bf16")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    device, dtype = torch.device(args.device), DTYPES[args.dtype]
    config = official_config(args.version)
    layout = {**audio_vae_layout(config["audio_vae"]), **vocoder_layout(config["vocoder"])}
    g = torch.Generator().manual_seed(0)
    sd = {k: random_tensor(k, s, g) for k, s in layout.items()}
    vae = AudioVAE(config["audio_vae"], dtype=dtype, device=device)
    vae.load_state_dict({k[10:]: v for k, v in sd.items() if k.startswith("audio_vae.")}, strict=True)
    voc = build_vocoder(config["vocoder"], dtype=dtype, device=device)
    voc.load_state_dict({k[8:]: v for k, v in sd.items() if k.startswith("vocoder.")}, strict=True)
    voc.to(device)
    frames = round(args.seconds * 25)
    latent = torch.randn(1, 8, frames, 16, generator=g).to(device, dtype)
    (ours, rate), t_ours, peak_ours = timed(lambda: decode_audio(vae, voc, latent), device, args.repeats)
    del vae, voc
    dec, ref_voc, ref_decode = reference(config, sd, device, dtype)
    ref, t_ref, peak_ref = timed(lambda: ref_decode(latent, dec, ref_voc), device, args.repeats)
    diff = ((ours[0].double() - ref.waveform.double()).abs().max() / ref.waveform.double().abs().max()).item()
    print(json.dumps({
        "bench": "audio_decode", "version": args.version, "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None, "dtype": args.dtype,
        "latent_frames": frames, "samples": ours.shape[-1], "sample_rate": rate,
        "ours_s": round(t_ours, 4), "ltx_core_s": round(t_ref, 4),
        "ours_peak_gib": peak_ours and round(peak_ours, 3), "ltx_core_peak_gib": peak_ref and round(peak_ref, 3),
        "max_rel_diff": diff,
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
