"""Building blocks of the LTX-2.5 diffusion decoder ("DiffVAE"): 3D neighborhood attention & co.

Tensors are channels-last ``(B, T, H, W, C)`` token grids throughout.  Module and parameter names
equal the keys of the released ``vae/ltx-2.5-video-vae-bf16.safetensors`` (under ``decoder.``):
``attn.qkv`` (q | k | v stacked), ``attn.proj``, ``attn.q_norm`` / ``attn.k_norm``,
``mlp.w_gate`` / ``w_up`` / ``w_down``, ``norm1`` / ``norm2``, ``context_proj``,
``scale_shift_table``, ``proj`` (upsamplers), ``t_embedder.mlp.{0,2}``, ``shared_adaln.proj``.

Facts (read off diffusers 0.42.1 ``models/autoencoders/ltx2_diffusion_decoder.py``, the test
oracle, and comfy-kitchen 0.2.40's eager ``na3d``, which ComfyUI runs):

* neighborhood attention: every query attends exactly ``k`` positions per axis, a window centred
  on it and shifted inward at the borders (NATTEN semantics); an axis shorter than its kernel
  is attended whole (comfy-kitchen clamps the kernel; diffusers refuses such grids, so a
  single-frame decode only runs the ComfyUI way);
* q and k are RMS-normalised per head, the query is scaled by ``1/sqrt(head_dim)``, then both
  get an absolute 3D RoPE: ``head_dim`` split into T / H / W parts (a quarter, rounded to an even
  width, for T; the rest halved), each part rotated in (even, odd) pairs by its axis index;
* the MLP is SwiGLU at ``round_up(4 * dim, 16)`` and pointwise over tokens, so it runs in token
  chunks (same values, bounded memory).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

SWIGLU_CHUNK = 16384  # tokens per SwiGLU chunk: three hidden-width tensors live at a time
ATTENTION_SCORE_BUDGET = 1 << 26  # attention scores (tile queries x region keys x heads) per chunk
TIMESTEP_CHANNELS = 256


def sinusoid(t: torch.Tensor, channels: int = TIMESTEP_CHANNELS, max_period: float = 10000.0) -> torch.Tensor:
    """``(N,)`` scaled timesteps -> ``(N, channels)`` ``[cos | sin]`` float32.

    The operation order is diffusers' ``get_timestep_embedding`` (flip_sin_to_cos, no shift):
    at timesteps near 1000 a one-ulp change in the frequencies moves the angles by ~1e-4.
    """
    half = channels // 2
    exponent = -math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device)
    angles = t.float()[:, None] * torch.exp(exponent / half)[None]
    return torch.cat((torch.cos(angles), torch.sin(angles)), dim=-1)


class TimestepEmbedder(torch.nn.Module):
    """``t_embedder``: 256 sinusoid channels -> ``mlp.0`` -> SiLU -> ``mlp.2`` (``dim`` wide)."""

    def __init__(self, dim: int, freq_channels: int = TIMESTEP_CHANNELS, *, ops, **kw) -> None:
        super().__init__()
        self.freq_channels = freq_channels
        self.mlp = torch.nn.Sequential(ops.Linear(freq_channels, dim, **kw), torch.nn.SiLU(), ops.Linear(dim, dim, **kw))

    def forward(self, t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:  # (N,) scaled -> (N, dim)
        return self.mlp(sinusoid(t, self.freq_channels).to(dtype))


def rope_split(head_dim: int) -> tuple[int, int, int]:
    """Widths of the (T, H, W) parts of a head: 64 -> (16, 24, 24)."""
    if head_dim % 8:
        raise ValueError(f"diffusion VAE: head_dim must be a multiple of 8, found {head_dim}")
    dim_t = head_dim // 4 // 2 * 2
    dim_hw = (head_dim - dim_t) // 2
    if dim_hw % 2:
        dim_t -= 2
        dim_hw = (head_dim - dim_t) // 2
    return dim_t, dim_hw, dim_hw


def _rotate_pairs(x: torch.Tensor, positions: torch.Tensor, dim: int, axis: int, base: float) -> torch.Tensor:
    """Rotate the (even, odd) pairs of ``x (B, T, H, W, heads, dim)`` by ``position * inv_freq`` along ``axis``."""
    inv = (1.0 / base ** (torch.arange(0, dim, 2, dtype=torch.float64, device=x.device) / dim)).to(torch.float32)
    shape = [1, 1, 1, 1, 1, inv.shape[0]]
    shape[axis] = positions.shape[0]
    angles = (positions[:, None] * inv[None]).reshape(shape)
    cos, sin = angles.cos(), angles.sin()
    pairs = x.unflatten(-1, (dim // 2, 2))
    even, odd = pairs[..., 0].float(), pairs[..., 1].float()
    return torch.stack((even * cos - odd * sin, even * sin + odd * cos), dim=-1).flatten(-2).to(x.dtype)


def rope_3d(x: torch.Tensor, split: tuple[int, int, int], base: float = 10000.0) -> torch.Tensor:
    """Absolute 3D RoPE of ``x (B, T, H, W, heads, head_dim)`` over its own grid indices (float32 math)."""
    parts, start = [], 0
    for axis, dim in zip((1, 2, 3), split):
        positions = torch.arange(x.shape[axis], dtype=torch.float32, device=x.device)
        parts.append(_rotate_pairs(x[..., start : start + dim], positions, dim, axis, base))
        start += dim
    return torch.cat(parts, dim=-1)


# ------------------------------------------------------------------------------ neighborhood attention
def _axis_plan(length: int, kernel: int, tile: int, device) -> tuple[int, torch.Tensor, torch.Tensor]:
    """Query tiles of ``tile`` positions along one axis and the key region each one needs.

    Returns ``(region, starts (n_tiles,), mask (n_tiles, tile, region))``: every tile gathers
    ``region`` consecutive keys from ``starts[i]``; ``mask`` marks, per query of the tile, the
    keys of its own window.  Windows start at ``clamp(q - k // 2, 0, length - k)``, which never
    decreases along the axis and grows by at most one per query, so one region of
    ``tile + k - 1`` keys holds all windows of a tile.  Queries past the end (padding) get the
    last window; their outputs are discarded.
    """
    region = min(length, tile + kernel - 1)
    n_tiles = -(-length // tile)
    query = torch.arange(n_tiles * tile, device=device).view(n_tiles, tile)
    window = (query - kernel // 2).clamp(0, length - kernel)  # (n_tiles, tile)
    starts = window[:, 0].clamp(max=length - region)
    keys = starts[:, None] + torch.arange(region, device=device)[None]  # (n_tiles, region)
    mask = (keys[:, None, :] >= window[..., None]) & (keys[:, None, :] < window[..., None] + kernel)
    return region, starts, mask


def neighborhood_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, kernel: tuple[int, int, int],
                           scale: float | None = None) -> torch.Tensor:  # fmt: skip
    """3D neighborhood attention: ``(B, T, H, W, heads, d)`` x3 -> ``(B, T, H, W, heads, d)``.

    Exact (every query sees exactly its window, nothing else).  Queries are grouped in tiles of
    half a kernel per axis; a tile's keys are gathered once as one region and a boolean mask
    selects each query's window in it (a tile costs ``~1.5^3`` the minimal work).  Tiles are
    processed in chunks whose attention scores stay under ``ATTENTION_SCORE_BUDGET``; the
    default ``scale`` is ``1/sqrt(d)``.
    """
    b, t, h, w, heads, d = q.shape
    grid = (t, h, w)
    kernels = tuple(min(int(kk), n) for kk, n in zip(kernel, grid))
    tiles = tuple(max(1, kk // 2) for kk in kernels)
    plans = [_axis_plan(n, kk, s, q.device) for n, kk, s in zip(grid, kernels, tiles)]
    regions = tuple(p[0] for p in plans)
    counts = tuple(-(-n // s) for n, s in zip(grid, tiles))
    tile_tokens, region_tokens = math.prod(tiles), math.prod(regions)

    # queries, tiled: (B, n_tiles, heads, tile_tokens, d)
    padded = tuple(c * s for c, s in zip(counts, tiles))
    qp = F.pad(q, (0, 0, 0, 0, 0, padded[2] - w, 0, padded[1] - h, 0, padded[0] - t))
    qp = qp.reshape(b, counts[0], tiles[0], counts[1], tiles[1], counts[2], tiles[2], heads, d)
    qp = qp.permute(0, 1, 3, 5, 7, 2, 4, 6, 8).reshape(b, math.prod(counts), heads, tile_tokens, d)

    # tiles in (t, h, w) order; each gathers its key region from the flat key grid
    it, ih, iw = torch.meshgrid(*(torch.arange(c, device=q.device) for c in counts), indexing="ij")
    it, ih, iw = it.flatten(), ih.flatten(), iw.flatten()
    (_, st, mt), (_, sh, mh), (_, sw, mw) = plans
    ar = [torch.arange(r, device=q.device) for r in regions]
    kf = k.reshape(b, t * h * w, heads, d)
    vf = v.reshape(b, t * h * w, heads, d)

    out = torch.empty_like(qp)
    chunk = max(1, ATTENTION_SCORE_BUDGET // (b * heads * tile_tokens * region_tokens))
    for c0 in range(0, it.shape[0], chunk):
        ct, ch, cw = it[c0 : c0 + chunk], ih[c0 : c0 + chunk], iw[c0 : c0 + chunk]
        g = ct.shape[0]
        index = (((st[ct][:, None, None, None] + ar[0][None, :, None, None]) * h
                  + sh[ch][:, None, None, None] + ar[1][None, None, :, None]) * w
                 + sw[cw][:, None, None, None] + ar[2][None, None, None, :]).reshape(-1)  # (g * region_tokens,)
        keys = kf[:, index].reshape(b, g, region_tokens, heads, d).permute(0, 1, 3, 2, 4).reshape(b * g, heads, -1, d)
        values = vf[:, index].reshape(b, g, region_tokens, heads, d).permute(0, 1, 3, 2, 4).reshape(b * g, heads, -1, d)
        mask = (mt[ct][:, :, None, None, :, None, None]
                & mh[ch][:, None, :, None, None, :, None]
                & mw[cw][:, None, None, :, None, None, :]).reshape(1, g, 1, tile_tokens, region_tokens)  # fmt: skip
        mask = mask.expand(b, -1, -1, -1, -1).reshape(b * g, 1, tile_tokens, region_tokens)
        queries = qp[:, c0 : c0 + g].reshape(b * g, heads, tile_tokens, d)
        att = F.scaled_dot_product_attention(queries, keys, values, attn_mask=mask, scale=scale)
        out[:, c0 : c0 + g] = att.reshape(b, g, heads, tile_tokens, d)
    out = out.reshape(b, counts[0], counts[1], counts[2], heads, tiles[0], tiles[1], tiles[2], d)
    out = out.permute(0, 1, 5, 2, 6, 3, 7, 4, 8).reshape(b, *padded, heads, d)
    return out[:, :t, :h, :w]


class NeighborhoodAttention(torch.nn.Module):
    """``qkv`` -> per-head RMS norm (q, k) -> scale q -> 3D RoPE -> neighborhood attention -> ``proj``."""

    def __init__(self, dim: int, kernel: tuple[int, int, int], head_dim: int, *, ops, **kw) -> None:
        super().__init__()
        if dim % head_dim:
            raise ValueError(f"diffusion VAE: width {dim} is not a multiple of head_dim {head_dim}")
        self.heads, self.head_dim = dim // head_dim, head_dim
        self.kernel = tuple(int(x) for x in kernel)
        self.split = rope_split(head_dim)
        self.qkv = ops.Linear(dim, 3 * dim, **kw)
        self.proj = ops.Linear(dim, dim, **kw)
        self.q_norm = ops.RMSNorm(head_dim, eps=1e-6, **kw)
        self.k_norm = ops.RMSNorm(head_dim, eps=1e-6, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, H, W, C)
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, self.head_dim)).unbind(-3)
        q = rope_3d(self.q_norm(q) * self.head_dim**-0.5, self.split)  # norm, scale, rotate: the reference order
        k = rope_3d(self.k_norm(k), self.split)
        out = neighborhood_attention(q, k, v, self.kernel, scale=1.0)
        return self.proj(out.flatten(-2))


class SwiGLU(torch.nn.Module):
    """``w_down(silu(w_gate(x)) * w_up(x))`` in chunks of ``SWIGLU_CHUNK`` tokens."""

    def __init__(self, dim: int, hidden: int, *, ops, **kw) -> None:
        super().__init__()
        self.w_up = ops.Linear(dim, hidden, bias=False, **kw)
        self.w_gate = ops.Linear(dim, hidden, bias=False, **kw)
        self.w_down = ops.Linear(hidden, dim, bias=False, **kw)

    def _mlp(self, x: torch.Tensor) -> torch.Tensor:
        return self.w_down(F.silu(self.w_gate(x)) * self.w_up(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.reshape(-1, x.shape[-1])
        if flat.shape[0] <= SWIGLU_CHUNK:
            return self._mlp(x)
        out = torch.empty_like(flat)
        for s in range(0, flat.shape[0], SWIGLU_CHUNK):
            out[s : s + SWIGLU_CHUNK] = self._mlp(flat[s : s + SWIGLU_CHUNK])
        return out.reshape(x.shape)


class NABlock(torch.nn.Module):
    """Deterministic stage block: ``x + attn(norm1(x))``, then ``x + mlp(norm2(x))``."""

    def __init__(self, dim: int, kernel, head_dim: int, mlp_hidden: int, *, ops, **kw) -> None:
        super().__init__()
        self.norm1 = ops.RMSNorm(dim, eps=1e-6, **kw)
        self.attn = NeighborhoodAttention(dim, kernel, head_dim, ops=ops, **kw)
        self.norm2 = ops.RMSNorm(dim, eps=1e-6, **kw)
        self.mlp = SwiGLU(dim, mlp_hidden, ops=ops, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class DiffusionNABlock(NABlock):
    """Stage-5 block: adds ``context_proj(context)``, then the NA block under AdaLN scale / shift.

    ``modulation``: ``num_chunks`` tensors ``(B, 1, 1, 1, C)`` from the shared AdaLN; this block's
    ``scale_shift_table`` row ``i`` is added to chunk ``i``.  Chunks 0 / 1 scale / shift the
    attention input, 3 / 4 the MLP input; the gate chunks (2, 5, 6) are unused (the residuals
    are ungated in the released model).
    """

    def __init__(self, dim: int, kernel, head_dim: int, mlp_hidden: int, context_channels: int, num_chunks: int,
                 *, ops, **kw) -> None:  # fmt: skip
        super().__init__(dim, kernel, head_dim, mlp_hidden, ops=ops, **kw)
        self.context_proj = ops.Linear(context_channels, dim, **kw)
        self.scale_shift_table = torch.nn.Parameter(torch.empty(num_chunks, dim, **kw))

    def forward(self, x: torch.Tensor, context: torch.Tensor, modulation: list[torch.Tensor]) -> torch.Tensor:
        table = self.scale_shift_table.to(x.dtype)
        scale_msa, shift_msa, _, scale_mlp, shift_mlp = (modulation[i] + table[i] for i in range(5))
        x = x + self.context_proj(context)
        x = x + self.attn(self.norm1(x) * (1 + scale_msa) + shift_msa)
        return x + self.mlp(self.norm2(x) * (1 + scale_mlp) + shift_mlp)


class SharedAdaLN(torch.nn.Module):
    """``shared_adaln``: timestep embedding ``(B, E)`` -> ``num_chunks`` x ``(B, 1, 1, 1, C)``."""

    def __init__(self, dim: int, t_dim: int, num_chunks: int, *, ops, **kw) -> None:
        super().__init__()
        self.num_chunks = num_chunks
        self.proj = ops.Linear(t_dim, num_chunks * dim, **kw)

    def forward(self, emb: torch.Tensor) -> list[torch.Tensor]:
        return [c[:, None, None, None] for c in self.proj(F.silu(emb)).chunk(self.num_chunks, dim=-1)]


class PixelShuffleUp(torch.nn.Module):
    """``proj`` to ``prod(stride) * C / reduction`` channels, then depth-to-space (channels-last).

    A temporal stride of 2 turns ``T`` frames into ``2T``; the first is dropped (``2T - 1``, the
    causal 1 + 8k frame mapping) unless ``drop_leading_frame`` is False (a tile that does not
    start at frame 0).
    """

    def __init__(self, channels: int, stride, reduction: int, *, ops, **kw) -> None:
        super().__init__()
        self.stride = tuple(int(s) for s in stride)
        if channels % reduction:
            raise ValueError(f"diffusion VAE: {channels} channels do not divide by the upsampler reduction {reduction}")
        self.out_channels = channels // reduction
        self.proj = ops.Linear(channels, math.prod(self.stride) * self.out_channels, **kw)

    def forward(self, x: torch.Tensor, drop_leading_frame: bool = True) -> torch.Tensor:
        b, t, h, w, _ = x.shape
        st, sh, sw = self.stride
        x = self.proj(x).reshape(b, t, h, w, self.out_channels, st, sh, sw)
        x = x.permute(0, 1, 5, 2, 6, 3, 7, 4).reshape(b, t * st, h * sh, w * sw, self.out_channels)
        return x[:, 1:] if st == 2 and drop_leading_frame else x


def patchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """Space-to-depth on H / W: ``(B, C, F, H, W)`` -> ``(B, C*p*p, F, H/p, W/p)``, channel order (c, w, h)."""
    b, c, f, h, w = x.shape
    x = x.reshape(b, c, f, h // p, p, w // p, p).permute(0, 1, 6, 4, 2, 3, 5)
    return x.reshape(b, c * p * p, f, h // p, w // p)


def unpatchify(x: torch.Tensor, p: int) -> torch.Tensor:
    """The inverse of ``patchify``."""
    b, c, f, h, w = x.shape
    x = x.reshape(b, c // (p * p), p, p, f, h, w).permute(0, 1, 4, 5, 3, 6, 2)
    return x.reshape(b, c // (p * p), f, h * p, w * p)
