"""ocsf source (being written)."""
