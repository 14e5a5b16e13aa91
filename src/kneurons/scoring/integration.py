"""Integration points of path attributions: captum's rules, in float64 (torch-free)."""

from __future__ import annotations

import numpy as np

INTEGRATION_METHODS: tuple[str, ...] = (
    "riemann_right",
    "riemann_left",
    "riemann_middle",
    "riemann_trapezoid",
    "gausslegendre",
)


def integration_points(steps: int, method: str = "riemann_right") -> tuple[np.ndarray, np.ndarray]:
    """``(alphas, weights)`` of captum's ``approximation_parameters(method)``, ``steps`` points, float64.

    Matches captum, including its trapezoid rule (``alphas = linspace(0, 1, n)``, weights ``1/n``
    with halved end points, so they sum to ``1 - 1/n`` rather than 1). Riemann rules also accept
    ``steps = 1`` here (captum asserts ``n > 1``).
    """
    n = int(steps)
    if n < 1:
        raise ValueError(f"integration steps must be >= 1, got {steps}")
    if method == "gausslegendre":
        x, w = np.polynomial.legendre.leggauss(n)
        return 0.5 * (1.0 + x), 0.5 * w
    weights = np.full(n, 1.0 / n)
    if method == "riemann_right":
        alphas = np.arange(1, n + 1) / n
    elif method == "riemann_left":
        alphas = np.arange(n) / n
    elif method == "riemann_middle":
        alphas = (np.arange(n) + 0.5) / n
    elif method == "riemann_trapezoid":
        if n < 2:
            raise ValueError("riemann_trapezoid needs at least 2 steps")
        alphas = np.linspace(0.0, 1.0, n)
        weights[0] /= 2
        weights[-1] /= 2
    else:
        raise ValueError(f"unknown integration method {method!r}; one of {', '.join(INTEGRATION_METHODS)}")
    return alphas.astype(np.float64), weights
