"""Degradation models, training and self-supervised adaptation."""
