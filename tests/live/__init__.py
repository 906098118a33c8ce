"""Live emulation: real containers, the real sensor, a real sink (Linux, root)."""
