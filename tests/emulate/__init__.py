"""Tests of adversary emulation: scenarios, synthetic replay, sensor parsing, coverage."""
