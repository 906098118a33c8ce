"""Adversary emulation: scenarios, live runs in real containers, synthetic telemetry, coverage."""
