"""cvm pipeline."""
