"""What units know, measured as the field measures it: concept alignment (InterPLM, Simon & Zou 2025).

Every neuron and SAE feature against the concepts of the split's residue annotations (UniProt
feature types grouped by ligand or note; the synthetic planted motifs), with InterPLM's F1 held out
(threshold on the validation proteins, F1 on the test proteins), sanity-checked against shuffled
labels (NeuronEval, ICML 2025), summarised per layer and kind of unit, and crossed with the causal
ranking (claim 7: do the knowledge units align with catalytic concepts more than random units?).

Modules: ``catalogue`` (concepts, instances, controls), ``metric`` (counts -> precision, recall,
F1, thresholds), ``alignment`` (nulls, the aligned decision), ``results`` (the tables),
``knowledge`` (knowledge units against random units): torch-free. ``activations`` streams a model's
units into counts (torch). The job: ``kneurons.jobs.concepts``; the figures:
``kneurons.figures.concepts``.
"""
