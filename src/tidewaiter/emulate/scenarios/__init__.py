"""Bundled emulation scenarios (YAML), read by emulate/scenario.py."""
