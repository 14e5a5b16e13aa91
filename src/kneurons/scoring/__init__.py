"""Neuron scoring: one class per method (activation, ig, gradxact, delta, random) behind one shape.

``registry`` (torch-free) lists the methods; ``base`` holds the method shape and ``score_layer``;
``activation``, ``ig``, ``delta`` and ``random`` implement the methods; ``integration`` (integration points),
``rows`` (score-table rows) and ``subset`` (the scoring subset) are torch-free helpers;
``reference`` holds the straightforward computations that tests and benchmarks compare against.
This package imports nothing itself, so that importing ``registry`` needs no torch.
"""
