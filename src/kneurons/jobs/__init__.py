"""The job seam: what every workflow script calls, and the per-stage job adapters."""
