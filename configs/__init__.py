"""Bundled YAML configurations (installed as ``geo_med_sr.configs``)."""
