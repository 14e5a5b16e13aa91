"""EvolutionaryScale's ESM C through transformers (``model.backend: esmc``): the backend (``backend``) and
its weights, the official ``.pth`` file or a snapshot folder (``load``).

Light on purpose: importing the package imports nothing."""
