"""tetragon source (being written)."""
