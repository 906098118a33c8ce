"""Sigma in and out: tidewaiter's catalog written as Sigma rules, and users' Sigma rules run
over tidewaiter's events as signals. Needs the `sigma` extra (pySigma)."""


class SigmaLoadError(Exception):
    """A --sigma path that cannot be used at all: missing, holding no rules, or pySigma absent."""
