"""zeek source (being written)."""
