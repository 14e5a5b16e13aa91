"""Knowledge neurons in protein language models (reproducing and extending arXiv:2312.10770)."""

__version__ = "0.1.0"
