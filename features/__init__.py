"""cvm features."""
