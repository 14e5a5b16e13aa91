"""Hugging Face transformers' ESM-2 (``model.backend: hf``): the backend (``backend``), reading
snapshot directories and the hub cache offline (``load``), and ``kneurons convert`` between fair-esm
files and snapshots (``convert``). Snapshot directories themselves (torch-free) are
``kneurons.model.backends.snapshot``.

Light on purpose: importing the package imports nothing."""
