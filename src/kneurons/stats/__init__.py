"""Statistics over ablation results: curves, gaps to random, density; classification metrics."""
