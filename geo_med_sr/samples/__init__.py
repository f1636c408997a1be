"""Small real samples shipped for the demo (see each folder's ATTRIBUTION.md)."""
