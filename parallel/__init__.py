"""One LTX-2 forward split across processes (GPUs) with ``torch.distributed``.

Two axes, as in xDiT's unified sequence parallelism:

* **CFG parallel** (``cfg``): the batch items of one model call (the guidance passes: cond,
  uncond, STG-perturbed, modality-isolated) go to different groups of ranks.  No traffic
  inside a forward; the outputs are gathered at the end.
* **Sequence parallel** (``ulysses`` x ``ring`` inside each CFG group): the video and audio
  tokens are cut into equal shards (padded, the padding masked out as keys); every
  token-wise layer (projections, RoPE, AdaLN with per-token timesteps, feed-forward, the
  text cross-attention against the replicated prompt) runs on the local shard only.  The
  attentions whose keys are sharded (video / audio self-attention, audio<->video) exchange
  tokens: Ulysses (an all-to-all from sequence shards to head shards and back) and, where
  heads run out or a ring is asked for, ring attention (K/V blocks passed around a ring,
  partial results merged by their log-sum-exp).

The collectives and the online-softmax merge are yunchang's (``pip install yunchang``, the
USP library that xDiT builds on); ``attention.py`` says which primitives and why the
attention kernels themselves stay ours.  Nothing here imports ComfyUI or Ray: ``worker.py``
is the per-rank process state that ``host/multigpu.py`` drives through Ray actors.

Modules: ``plan.py`` (degrees, chosen or checked), ``mesh.py`` (process groups),
``attention.py`` (the sequence-parallel kernel), ``sharded.py`` (one sharded forward),
``worker.py`` (a rank's model and loop), ``bootstrap.py`` (importing the pack in a worker).
"""
