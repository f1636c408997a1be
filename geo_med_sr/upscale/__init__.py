"""Single-image SR (``upscale``): method registry and resolver, request, pipeline, batch, evaluate."""
