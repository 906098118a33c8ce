"""falco source (being written)."""
