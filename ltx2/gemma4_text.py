"""Gemma 4's text decoder in plain PyTorch: the LTX-2.5 text encoder's language model.

The pack cannot run Gemma 4 through ``transformers`` (``gemma4_unified`` exists only in 5.x; the
venv keeps 4.x for ltx-core), so this is our own forward, equal to transformers 5.24's
``Gemma4UnifiedTextModel`` on the same weights (``tests/test_ltx25_gemma4.py``).  Only the text
path is modelled: LTX encodes prompts, never images or audio.

Per layer (``layer_types``: five ``sliding_attention`` then one ``full_attention``, repeated)::

    h   = x + post_attention_layernorm(attn(input_layernorm(x)))
    out = (h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h)))) * layer_scalar

* RMS norms multiply by their weight directly (Gemma 3 used ``1 + w``), computed in float32;
* attention: per-head RMS norm of q and k (weights), of v (no weight); RoPE (half-split rotation)
  on q and k; softmax scale 1 (the q norm carries it); grouped kv heads;
* sliding layers: ``head_dim`` 256, 8 kv heads, a causal window of ``sliding_window`` keys,
  RoPE theta 1e4 over the whole head;
* full layers: ``global_head_dim`` 512, ``num_global_key_value_heads`` (1) and, with
  ``attention_k_eq_v``, no ``v_proj``: the values are the k projection (before its norm, without
  RoPE); "proportional" RoPE theta 1e6 on the first ``partial_rotary_factor`` (1/4) of the
  rotation pairs, the rest left as they are;
* MLP: ``down(gelu_tanh(gate(x)) * up(x))``; embeddings scaled by ``sqrt(hidden_size)`` (rounded
  to the weight dtype).

``forward(input_ids, attention_mask, output_hidden_states=True)`` returns every hidden state
(embedding output, then each layer's output; the last one after the final norm), the tuple
LTX's feature extractor consumes: 49 of ``(B, L, 3840)`` for the released 12B.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F

from .ops import resolve

SLIDING, FULL = "sliding_attention", "full_attention"
# Gemma 4 12B values that tensor shapes do not reveal (the released gemma_config.text_config).
GEMMA4_FAMILY = {
    "rms_norm_eps": 1e-6,
    "sliding_window": 1024,
    "hidden_activation": "gelu_pytorch_tanh",
    "rope_parameters": {
        SLIDING: {"rope_type": "default", "rope_theta": 10_000.0},
        FULL: {"rope_type": "proportional", "partial_rotary_factor": 0.25, "rope_theta": 1_000_000.0},
    },
    "pad_token_id": 0,
    "eos_token_id": 1,
    "bos_token_id": 2,
}
SLIDING_PATTERN = 6  # five sliding layers, then one full


@dataclass(frozen=True)
class Gemma4TextConfig:
    """Shapes (from tensors) and the constants the header gives (``gemma_config.text_config``)."""

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_attention_heads: int
    head_dim: int
    num_key_value_heads: int
    global_head_dim: int
    num_global_key_value_heads: int
    layer_types: tuple[str, ...]
    attention_k_eq_v: bool
    attention_bias: bool = False
    rms_norm_eps: float = 1e-6
    sliding_window: int = 1024
    rope_parameters: Mapping = field(default_factory=lambda: dict(GEMMA4_FAMILY["rope_parameters"]))
    pad_token_id: int = 0
    # image / video / audio placeholder ids: Gemma 4 embeds them as padding when no media is given
    placeholder_token_ids: tuple[int, ...] = ()

    @property
    def num_hidden_layers(self) -> int:
        return len(self.layer_types)

    def layer(self, i: int) -> tuple[int, int, bool]:
        """(head_dim, kv heads, has v_proj) of layer ``i``."""
        if self.layer_types[i] == FULL:
            return self.global_head_dim, self.num_global_key_value_heads, not self.attention_k_eq_v
        return self.head_dim, self.num_key_value_heads, True


def inv_freq(cfg: Gemma4TextConfig, layer_type: str, device=None) -> torch.Tensor:
    """RoPE inverse frequencies ``(head_dim / 2,)`` float32 of one layer type (zeros where not rotated)."""
    params = dict(cfg.rope_parameters.get(layer_type) or {})
    dim = cfg.global_head_dim if layer_type == FULL else cfg.head_dim
    base = float(params.get("rope_theta", 10_000.0))
    kind = params.get("rope_type", "default")
    if kind == "default":
        return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64, device=device).float() / dim))
    if kind == "proportional":
        angles = int(float(params.get("partial_rotary_factor", 1.0)) * dim // 2)
        rotated = 1.0 / (base ** (torch.arange(0, 2 * angles, 2, dtype=torch.int64, device=device).float() / dim))
        freqs = torch.cat((rotated, torch.zeros(dim // 2 - angles, dtype=torch.float32, device=device)))
        return freqs / float(params.get("factor", 1.0))
    raise ValueError(f"Gemma 4: rope_type {kind!r} of {layer_type} layers is not supported (default / proportional)")


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    a, b = x.chunk(2, dim=-1)
    return torch.cat((-b, a), dim=-1)


class RMSNorm(torch.nn.Module):
    """Gemma 4 RMS norm: ``x / rms(x) * weight`` in float32 (no weight when ``scale`` is False)."""

    def __init__(self, dim: int, eps: float, scale: bool = True, *, dtype=None, device=None) -> None:
        super().__init__()
        self.eps = eps
        self.weight = torch.nn.Parameter(torch.empty(dim, dtype=dtype, device=device)) if scale else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = x.float() * torch.pow(x.float().pow(2).mean(-1, keepdim=True) + self.eps, -0.5)
        if self.weight is not None:
            out = out * self.weight.float()
        return out.type_as(x)


class Attention(torch.nn.Module):
    """Self-attention of one layer (sliding or full), ``(B, L, D) -> (B, L, D)``."""

    def __init__(self, cfg: Gemma4TextConfig, index: int, *, ops, **kw) -> None:
        super().__init__()
        self.head_dim, self.kv_heads, has_v = cfg.layer(index)
        self.heads = cfg.num_attention_heads
        d, bias = cfg.hidden_size, cfg.attention_bias
        self.q_proj = ops.Linear(d, self.heads * self.head_dim, bias=bias, **kw)
        self.k_proj = ops.Linear(d, self.kv_heads * self.head_dim, bias=bias, **kw)
        self.v_proj = ops.Linear(d, self.kv_heads * self.head_dim, bias=bias, **kw) if has_v else None
        self.o_proj = ops.Linear(self.heads * self.head_dim, d, bias=bias, **kw)
        self.q_norm = RMSNorm(self.head_dim, cfg.rms_norm_eps, **kw)
        self.k_norm = RMSNorm(self.head_dim, cfg.rms_norm_eps, **kw)
        self.v_norm = RMSNorm(self.head_dim, cfg.rms_norm_eps, scale=False)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b, n, _ = x.shape
        q = self.q_norm(self.q_proj(x).view(b, n, self.heads, self.head_dim))
        k_raw = self.k_proj(x).view(b, n, self.kv_heads, self.head_dim)
        v = self.v_proj(x).view(b, n, self.kv_heads, self.head_dim) if self.v_proj is not None else k_raw
        k = self.k_norm(k_raw)
        q = (q * cos + _rotate_half(q) * sin).transpose(1, 2)  # (B, heads, L, d)
        k = (k * cos + _rotate_half(k) * sin).transpose(1, 2)
        v = self.v_norm(v).transpose(1, 2)
        groups = self.heads // self.kv_heads
        if groups > 1:  # each kv head serves `groups` consecutive query heads
            k = k.repeat_interleave(groups, dim=1)
            v = v.repeat_interleave(groups, dim=1)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=1.0)
        return self.o_proj(out.transpose(1, 2).reshape(b, n, -1))


class MLP(torch.nn.Module):
    def __init__(self, cfg: Gemma4TextConfig, *, ops, **kw) -> None:
        super().__init__()
        d, f = cfg.hidden_size, cfg.intermediate_size
        self.gate_proj = ops.Linear(d, f, bias=False, **kw)
        self.up_proj = ops.Linear(d, f, bias=False, **kw)
        self.down_proj = ops.Linear(f, d, bias=False, **kw)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.gelu(self.gate_proj(x), approximate="tanh") * self.up_proj(x))


class DecoderLayer(torch.nn.Module):
    def __init__(self, cfg: Gemma4TextConfig, index: int, *, ops, **kw) -> None:
        super().__init__()
        self.layer_type = cfg.layer_types[index]
        eps = cfg.rms_norm_eps
        self.self_attn = Attention(cfg, index, ops=ops, **kw)
        self.mlp = MLP(cfg, ops=ops, **kw)
        self.input_layernorm = RMSNorm(cfg.hidden_size, eps, **kw)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, eps, **kw)
        self.pre_feedforward_layernorm = RMSNorm(cfg.hidden_size, eps, **kw)
        self.post_feedforward_layernorm = RMSNorm(cfg.hidden_size, eps, **kw)
        self.layer_scalar = torch.nn.Parameter(torch.empty(1, **kw))  # a buffer in transformers; [1] in the file

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        x = x + self.post_attention_layernorm(self.self_attn(self.input_layernorm(x), cos, sin, mask))
        x = x + self.post_feedforward_layernorm(self.mlp(self.pre_feedforward_layernorm(x)))
        return x * self.layer_scalar.to(x.dtype)


class ScaledEmbedding(torch.nn.Module):
    """Token embedding times ``sqrt(hidden_size)`` rounded to the weight dtype (as Gemma does)."""

    def __init__(self, vocab: int, dim: int, *, ops, **kw) -> None:
        super().__init__()
        self.scale = math.sqrt(dim)
        self.weight = torch.nn.Parameter(torch.empty(vocab, dim, **kw))

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        w = self.weight
        # float32 first, then the weight dtype: sqrt(3840) = 61.97 becomes 62.0 in bf16, as in transformers
        return F.embedding(ids, w) * torch.tensor(self.scale, device=w.device).to(w.dtype)


@dataclass
class Gemma4Output:
    last_hidden_state: torch.Tensor
    hidden_states: tuple[torch.Tensor, ...] | None = None


def attention_masks(valid: torch.Tensor, window: int) -> dict[str, torch.Tensor]:
    """Boolean ``(B, 1, L, L)`` masks (True = attend) for both layer types from the padding mask ``(B, L)``."""
    n = valid.shape[1]
    i = torch.arange(n, device=valid.device)
    causal = i[None, :] <= i[:, None]  # key <= query
    full = causal[None, None] & valid[:, None, None, :].bool()
    sliding = full & (i[None, :] > i[:, None] - window)[None, None]
    return {FULL: full, SLIDING: sliding}


class Gemma4TextModel(torch.nn.Module):
    """``embed_tokens`` / ``layers`` / ``norm`` (the file's ``model.*`` names); see the module docstring."""

    def __init__(self, cfg: Gemma4TextConfig, *, operations=None, dtype=None, device=None) -> None:
        super().__init__()
        ops = resolve(operations)
        kw = {"dtype": dtype, "device": device}
        self.config = cfg
        self.embed_tokens = ScaledEmbedding(cfg.vocab_size, cfg.hidden_size, ops=ops, **kw)
        self.layers = torch.nn.ModuleList(DecoderLayer(cfg, i, ops=ops, **kw) for i in range(cfg.num_hidden_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps, **kw)

    def _rope(self, n: int, dtype: torch.dtype, device) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        positions = torch.arange(n, device=device, dtype=torch.float32)
        out = {}
        for kind in set(self.config.layer_types):
            freqs = positions[:, None] * inv_freq(self.config, kind, device)[None]
            emb = torch.cat((freqs, freqs), dim=-1)  # (L, head_dim)
            out[kind] = (emb.cos().to(dtype)[None, :, None], emb.sin().to(dtype)[None, :, None])
        return out

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                output_hidden_states: bool = True, **_) -> Gemma4Output:  # fmt: skip
        """``input_ids (B, L)``, ``attention_mask (B, L)`` (1 = token) -> every hidden state ``(B, L, D)``.

        Positions are ``0 .. L-1`` whatever the padding (left padding included), as in transformers.
        """
        if self.config.placeholder_token_ids:
            media = torch.isin(input_ids, torch.tensor(self.config.placeholder_token_ids, device=input_ids.device))
            input_ids = input_ids.masked_fill(media, self.config.pad_token_id)
        x = self.embed_tokens(input_ids)
        valid = torch.ones_like(input_ids, dtype=torch.bool) if attention_mask is None else attention_mask.bool()
        masks = attention_masks(valid.to(x.device), self.config.sliding_window)
        rope = self._rope(x.shape[1], x.dtype, x.device)
        states = [x] if output_hidden_states else None
        for layer in self.layers:
            x = layer(x, *rope[layer.layer_type], masks[layer.layer_type])
            if states is not None:
                states.append(x)
        x = self.norm(x)
        if states is not None:
            states[-1] = x  # the last hidden state is the normed one (transformers' convention)
        return Gemma4Output(x, tuple(states) if states is not None else None)


def config_from_shapes(shapes: Mapping[str, Sequence[int]], text_config: Mapping | None,
                       source: str = "Gemma 4", placeholder_token_ids: Sequence[int] = ()) -> Gemma4TextConfig:  # fmt: skip
    """A ``Gemma4TextConfig`` from text tensor shapes (keys without ``model.``) and the header's ``text_config``.

    Shapes give every width and which layers are full (their q norm is ``global_head_dim`` wide;
    ``attention_k_eq_v`` = no ``v_proj`` there); the header gives ``layer_types`` when both head
    dims are equal, and RoPE / window / eps (else ``GEMMA4_FAMILY``).  Variants this forward does
    not implement (per-layer inputs, shared kv layers, bidirectional text attention) are refused.
    """
    head = {**GEMMA4_FAMILY, **dict(text_config or {})}

    def shape(key):
        if key not in shapes:
            raise ValueError(f"{source}: the Gemma 4 tensor 'model.{key}' is missing; the file is incomplete")
        return tuple(shapes[key])

    for key, allowed in (("hidden_size_per_layer_input", (0, None)), ("num_kv_shared_layers", (0, None))):
        if head.get(key) not in allowed:
            raise ValueError(f"{source}: text_config.{key} = {head[key]}: this Gemma 4 variant is not supported "
                             "(LTX-2.5's Gemma 4 12B has 0)")  # fmt: skip
    if head.get("use_bidirectional_attention") == "all":
        raise ValueError(f"{source}: text_config.use_bidirectional_attention = 'all' is not supported (LTX-2.5's "
                         "Gemma 4 attends causally over text)")  # fmt: skip
    if head.get("enable_moe_block"):
        raise ValueError(f"{source}: a mixture-of-experts Gemma 4 is not supported")
    import re

    layers = sorted({int(m.group(1)) for k in shapes if (m := re.match(r"layers\.(\d+)\.", k))})
    if not layers or layers != list(range(len(layers))):
        raise ValueError(f"{source}: expected Gemma 4 layers 0..N-1, found {layers[:8]}")
    vocab, hidden = shape("embed_tokens.weight")
    q_dims = [shape(f"layers.{i}.self_attn.q_norm.weight")[0] for i in layers]
    dims = sorted(set(q_dims))
    declared = head.get("layer_types")
    if len(dims) == 2:
        types = tuple(FULL if d == dims[1] else SLIDING for d in q_dims)
        if declared is not None and tuple(declared) != types:
            raise ValueError(f"{source}: text_config.layer_types disagrees with the head sizes of the layers")
    elif len(dims) == 1:
        types = tuple(declared) if declared is not None else tuple(
            FULL if (i + 1) % SLIDING_PATTERN == 0 else SLIDING for i in layers)
        if len(types) != len(layers):
            raise ValueError(f"{source}: text_config.layer_types lists {len(types)} layers, the file has {len(layers)}")
    else:
        raise ValueError(f"{source}: the layers use {len(dims)} different head sizes {dims}; Gemma 4 has two at most")
    if any(t not in (SLIDING, FULL) for t in types):
        raise ValueError(f"{source}: unknown layer types {sorted(set(types))}")
    sliding = next((i for i, t in enumerate(types) if t == SLIDING), None)
    full = next((i for i, t in enumerate(types) if t == FULL), None)
    first = sliding if sliding is not None else full
    head_dim = shape(f"layers.{first}.self_attn.q_norm.weight")[0]
    heads = shape(f"layers.{first}.self_attn.q_proj.weight")[0] // head_dim
    kv = shape(f"layers.{first}.self_attn.k_proj.weight")[0] // head_dim
    g_dim, g_kv, k_eq_v = head_dim, kv, False
    if full is not None:
        g_dim = shape(f"layers.{full}.self_attn.q_norm.weight")[0]
        g_kv = shape(f"layers.{full}.self_attn.k_proj.weight")[0] // g_dim
        k_eq_v = f"layers.{full}.self_attn.v_proj.weight" not in shapes
        if shape(f"layers.{full}.self_attn.q_proj.weight")[0] != heads * g_dim:
            raise ValueError(f"{source}: full-attention layers have another query head count than sliding ones")
    if "attention_k_eq_v" in head and bool(head["attention_k_eq_v"]) != k_eq_v and full is not None:
        raise ValueError(f"{source}: text_config.attention_k_eq_v = {head['attention_k_eq_v']} but the full-attention "
                         f"layers {'lack' if k_eq_v else 'have'} v_proj")  # fmt: skip
    if sliding is None:
        head_dim, kv = g_dim, g_kv
    return Gemma4TextConfig(
        vocab_size=vocab,
        hidden_size=hidden,
        intermediate_size=shape(f"layers.{first}.mlp.gate_proj.weight")[0],
        num_attention_heads=heads,
        head_dim=head_dim,
        num_key_value_heads=kv,
        global_head_dim=g_dim,
        num_global_key_value_heads=g_kv,
        layer_types=types,
        attention_k_eq_v=k_eq_v,
        attention_bias=f"layers.{first}.self_attn.q_proj.bias" in shapes,
        rms_norm_eps=float(head["rms_norm_eps"]),
        sliding_window=int(head["sliding_window"]),
        rope_parameters=dict(head["rope_parameters"]),
        pad_token_id=int(head.get("pad_token_id", 0) or 0),
        placeholder_token_ids=tuple(int(i) for i in placeholder_token_ids),
    )


__all__ = ["FULL", "GEMMA4_FAMILY", "SLIDING", "Gemma4Output", "Gemma4TextConfig", "Gemma4TextModel",
           "attention_masks", "config_from_shapes", "inv_freq"]  # fmt: skip
