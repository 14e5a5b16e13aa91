"""Ablation: masks from score tables, fills, the fast engine and its naive reference."""
