"""Static figures of the workflow."""
