"""Processors: the interface and one adapter per processor."""
