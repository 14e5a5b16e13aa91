"""The fine-tuning stage: the loop (``loop``: ``fine_tune``, ``predict``), its setup from the config and
the split (``setup``), its resumable state (``state``) and the optimiser pieces (``optim``)."""
