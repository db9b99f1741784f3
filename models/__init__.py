"""cvm models."""
