"""Deployment through Larq Compute Engine (`larq_irnet.converters`)."""
