"""Telemetry the demo replays, written by this project in the producers' formats."""
