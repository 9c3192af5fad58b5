"""Trained predictor architectures by name (filled in by the trained-model modules)."""

ARCHITECTURES: dict[str, object] = {}
