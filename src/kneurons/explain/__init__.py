"""Explain my proteins: which knowledge units of a finished run fire on a protein a user brings,
where, what they mean, and whether they matter for it (``kneurons explain``).

``run`` finds a finished run's files and what it decided (label policy, fill), ``proteins`` reads
the user's FASTA or TSV as the run reads proteins, ``units`` holds the run's knowledge units and
the settings, ``compute`` explains one protein with one replicate (torch), ``batch`` a file of
proteins with every replicate (torch), ``summary`` and ``report`` put the result into
``explain.tsv``, ``explain.json`` and a self-contained page, ``cli`` is the command.
This package's ``__init__`` imports nothing, so the torch-free modules stay torch-free.
"""
