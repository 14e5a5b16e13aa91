"""The model seam: ESM-2 classifier, its backbones, hooks, batching and fine-tuning."""
