"""The pack's side of ComfyUI's runtime: everything that lives inside a running host.

Modules:
  model           the ComfyUI MODEL glue: latent format, model config, BaseModel, adapter
  conds           model conds and per-token masks of that MODEL
  model_loading   file -> ComfyUI MODEL (weight dtype, quantized operations, ModelPatcher)
  aux_models      VAE / audio VAE / upscaler modules wrapped in ModelPatchers
  lora            LoRA files applied through ComfyUI's patching
  offload         block streaming from CPU memory (pure torch)
  offload_policy  the streaming budget and its attachment to a ModelPatcher
  text_encoder    the text-encoder runtime: Gemma on demand, connectors, prompt cache
  gemma_streaming Gemma resident or streamed layer by layer
  prompt_cache    on-disk cache of encoded prompts
  previews        live previews while sampling (sampler wrapper, colours fitted to the VAE)

``model_loaders/`` turns files into modules and never imports ComfyUI; this package does
(except ``offload``, ``prompt_cache`` and ``gemma_streaming``, which benchmarks import on
their own).  Imports of ``model_loaders`` / ``ltx2`` are package-relative (``from
..model_loaders import ...``); the three host-free modules fall back to top-level imports
when the repository root is on ``sys.path``.
"""
