"""Sparse-autoencoder features as units (DESIGN.md, "Features"): the SAE math of every supported
format (``sae``), their files (``formats``), the hook point that shows an attached SAE's features to
scoring and ablation (``hook``), reconstruction quality and the wrong-layer check (``quality``), and
the workflow's own SAE training (``train``)."""
