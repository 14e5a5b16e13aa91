"""Characterisation: class-specific neurons and where neurons fire along sequences."""
