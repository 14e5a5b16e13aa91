"""The official ESM-2 sizes (torch-free: configuration validation and the cost plan read them).

fair-esm names the models ``esm2_t{layers}_{params}_UR50D``; the Hugging Face repositories of the
same weights are ``facebook/<name>`` (``kneurons.model.backends.snapshot.fair_esm_name``).
"""

from __future__ import annotations

#: fair-esm ESM-2 names and their (layers, embed_dim, heads).
ESM2_ARCHITECTURES: dict[str, tuple[int, int, int]] = {
    "esm2_t6_8M_UR50D": (6, 320, 20),
    "esm2_t12_35M_UR50D": (12, 480, 20),
    "esm2_t30_150M_UR50D": (30, 640, 20),
    "esm2_t33_650M_UR50D": (33, 1280, 20),
    "esm2_t36_3B_UR50D": (36, 2560, 40),
    "esm2_t48_15B_UR50D": (48, 5120, 40),
}
