"""LTX-2's image-to-video preprocessing: an H.264 round trip of the conditioning still.

LTX-2 was trained on video frames, which all carry H.264 compression artefacts; a pristine
PNG makes a conditioning frame unlike anything the model saw, and it over-reacts (frozen or
flickering first frames).  The reference pipelines therefore encode the still as a one-frame
H.264 video with libx264 at CRF 33 (``DEFAULT_IMAGE_CRF``; ``preset veryfast``, 1 fps,
yuv420p) and decode it back before the VAE sees it (LTX2_SPEC §3 "Image conditioning
preprocessing"); CRF 0 skips the step.  This module does the same with PyAV, in memory.
"""

from __future__ import annotations

import io

import av
import numpy as np
import torch

DEFAULT_IMAGE_CRF = 33
MAX_CRF = 51  # libx264's range is 0..51


def _roundtrip_uint8(rgb: np.ndarray, crf: int) -> np.ndarray:
    """One ``(H, W, 3)`` uint8 image (even H, W) through libx264 at ``crf`` and back."""
    h, w, _ = rgb.shape
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        stream = out.add_stream("libx264", rate=1, options={"crf": str(int(crf)), "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        frame = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p")
        out.mux(stream.encode(frame))
        out.mux(stream.encode())
    buf.seek(0)
    with av.open(buf, mode="r") as inp:
        decoded = next(inp.decode(video=0))
        return decoded.to_ndarray(format="rgb24")


def crf_roundtrip(image: torch.Tensor, crf: int = DEFAULT_IMAGE_CRF) -> torch.Tensor:
    """H.264-compress and decompress still image(s); same shape, dtype and device back.

    Args:
        image: ``(H, W, 3)`` or ``(B, H, W, 3)`` float in [0, 1] (ComfyUI IMAGE layout).
        crf: libx264 constant rate factor, 0..51 (0 returns the input unchanged; the
            reference default is 33; higher = stronger compression).

    Floats are rounded to bytes (a ComfyUI IMAGE loaded from an 8-bit file gets its exact bytes
    back).  Odd sizes, which yuv420p cannot code, are padded by repeating the last row/column
    and cropped back afterwards, so the output always has the input's size.
    """
    if not 0 <= int(crf) <= MAX_CRF:
        raise ValueError(
            f"crf {crf} is out of range: use 0 (off) to {MAX_CRF}; the LTX-2 default is {DEFAULT_IMAGE_CRF}"
        )
    if int(crf) == 0:
        return image
    single = image.ndim == 3
    batch = image[None] if single else image
    if batch.ndim != 4 or batch.shape[-1] != 3:
        raise ValueError(
            f"crf_roundtrip: expected an RGB image (H, W, 3) or (B, H, W, 3), got shape {tuple(image.shape)}"
        )
    h, w = batch.shape[1:3]
    arr = (batch.detach().float().clamp(0, 1) * 255.0).round().to(torch.uint8).cpu().numpy()
    pad = ((0, 0), (0, h & 1), (0, w & 1), (0, 0))
    if h & 1 or w & 1:
        arr = np.pad(arr, pad, mode="edge")
    out = np.stack([_roundtrip_uint8(np.ascontiguousarray(img), int(crf)) for img in arr])[:, :h, :w]
    result = torch.from_numpy(out).to(device=image.device, dtype=torch.float32).div_(255.0).to(image.dtype)
    return result[0] if single else result
