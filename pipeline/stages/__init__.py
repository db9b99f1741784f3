"""One module per DVC stage: read, call the pure core, write, log."""
