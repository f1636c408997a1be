"""Bundled default weights (trained by ``make weights`` with the project's own ``train`` command).

Each ``<name>.safetensors`` has its ``<name>.json`` config and a ``<name>.md`` model card.
"""
