"""Representations of flows for the models: tokens (sequence models) and GASF images (diffusion)."""
