"""Neuron scoring methods (activation, integrated gradients, grad x activation, random)."""
