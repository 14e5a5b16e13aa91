"""fair-esm's ESM-2 (``model.backend: fair-esm``): the backend (``backend``), its self-attention fast path
(``attention``), the official weights with their sha256 pins, download and safe loading (``weights``),
and a torch-free reader of a checkpoint's architecture for config validation (``checkpoint_shape``).

Light on purpose: importing the package imports nothing (``checkpoint_shape`` is torch-free)."""
