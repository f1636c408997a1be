"""Bundled models: the catalogue, checkpoints (.safetensors + JSON config), model cards; weights/."""
