"""Guided sharpening (``sharpen``): scene layout, Wald rule, methods, engine, training, evaluate."""
