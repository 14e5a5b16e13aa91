"""The planted-knowledge benchmark: do the scoring methods find knowledge where it was put?

A **base** model that does not know a task (the configured backbone with a fresh head, so the
random-initialised one in the embedded default) is fine-tuned on it with only a recorded set S of
neurons trainable: their rows in ``q_proj`` .. ``fc2``, and the head (``plant``). Every other
weight stays bit-identical to the base's, so under the ``pretrained`` fill with the base as the
reference, rolling back a neuron outside S changes nothing: S is the exact answer a scoring method
should find. The task is the parity of two motifs (``kneurons.data.synthetic.generate_parity_task``),
which the base's frozen features do not separate linearly, so the knowledge has to be in S and
not in the head; the head trained alone on the base is the control that says so.

``units`` draws S (spread over every module, or concentrated in one module type), ``plant``
freezes everything else, ``metrics`` measures how well a method's ranking finds S, and
``recovery`` pools those measures over the replicates into the benchmark's tables and verdicts.
The jobs are ``kneurons.jobs.planted``; the rules ``workflow/rules/planted.smk``.
"""
