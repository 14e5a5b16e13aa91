"""Sparse-autoencoder features as units (DESIGN.md, "Features"): the SAE math of every supported
format and where an SAE reads the model (``sae``), their files (``formats``; the published ones in
``published``, what readers share in ``files``), the hook point that shows an attached SAE's
features to scoring and ablation at its input point (``hook``), how well an SAE fits a model and
the wrong-layer check (``quality``), and the workflow's own SAE training (``train``)."""
