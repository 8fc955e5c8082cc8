"""Frozen backbones used by the stages: loaders from local checkpoints (no downloads, no
unpickling of code) plus seeded random initialisation for demos and tests."""
