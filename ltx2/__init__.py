"""The LTX-2 model family in plain PyTorch (no ComfyUI imports below this package)."""
