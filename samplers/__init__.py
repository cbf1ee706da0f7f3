"""Sampling for LTX-2: sigma schedules, guiders (CFG / STG / modality isolation / rescale),
steppers (euler, res_2s) and conditioning math, with thin adapters to ComfyUI's SIGMAS,
SAMPLER and GUIDER types.

The transformer already exposes what these need (``ltx2.inputs.Perturbations`` for STG and
modality isolation, per-token timesteps for conditioning tokens, ``velocity_to_x0``); the
modules themselves arrive with the sampling issue.
"""
