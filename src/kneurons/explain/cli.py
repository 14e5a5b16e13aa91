"""``kneurons explain --results DIR PROTEINS [--out DIR]``: explain a file of proteins with a finished run.

Torch-free until the run is found and the settings checked: a folder that is not a finished run,
or a bad setting, is refused before torch loads.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from kneurons.errors import EXPECTED_ERRORS, ConfigError, ModelError
from kneurons.schema import section_defaults


def default_out(proteins: str | Path) -> Path:
    """Where the page goes without ``--out``: ``explain-<file stem>`` in the working directory, beside
    (not inside) the run's results, so the workflow's own ``results/explain/`` stays its own."""
    name = Path(proteins).name
    for suffix in (".gz", ".fasta", ".fa", ".faa", ".tsv", ".csv", ".txt"):
        name = name.removesuffix(suffix)
    return Path(f"explain-{name}")


def parser() -> argparse.ArgumentParser:
    """The command's arguments; every setting's default is the schema's (``explain`` section)."""
    d = section_defaults("explain")
    p = argparse.ArgumentParser(
        prog="kneurons explain",
        description=(
            "Explain proteins with a finished run: per protein the prediction of every replicate, the run's "
            "knowledge units that drive the predicted class and on which residues, a per-residue track, and "
            "a causal check against random units. Writes index.html, explain.tsv and explain.json."
        ),
    )
    p.add_argument("proteins", help="FASTA or TSV file (a UniProt export or contract column names)")
    p.add_argument("--results", required=True, help="the results folder of a finished run")
    p.add_argument("--out", default=None, help="output folder (default: explain-<file name> here)")
    p.add_argument(
        "--device", default="cpu", choices=["auto", "cpu", "cuda"], help="torch device (default cpu)"
    )
    p.add_argument("--top-units", type=int, default=d["top_units"], help="units named per protein and kind")
    p.add_argument("--window", type=int, default=d["window"], help="residues per window around a peak")
    p.add_argument("--peaks", type=int, default=d["peaks"], help="windows per named unit")
    p.add_argument(
        "--random-seeds", type=int, nargs="+", default=d["random_seeds"], help="one random draw per seed"
    )
    p.add_argument(
        "--track-steps", type=int, default=d["track_steps"], help="integration points of the track"
    )
    p.add_argument("--token-budget", type=int, default=d["token_budget"], help="tokens per IG pass")
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="CPU threads of torch (default: torch's; 1 on a machine other jobs share: 2 threads on 2 "
        "busy cores ran 13x slower than 1)",
    )
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command; 0 on success, 2 (with one line on stderr) for bad input or settings."""
    args = parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        from kneurons.config import validate_config
        from kneurons.explain.run import find_run

        section = {
            "top_units": args.top_units,
            "window": args.window,
            "peaks": args.peaks,
            "random_seeds": list(args.random_seeds),
            "track_steps": args.track_steps,
            "token_budget": args.token_budget,
        }
        settings = {"explain": validate_config({"explain": section})["explain"]}
        files = find_run(args.results)
        if not Path(args.proteins).exists():
            raise FileNotFoundError(args.proteins)
        from kneurons.jobs.explain import run_explain_job
        from kneurons.model.runtime import resolve_device

        if args.threads is not None:
            if args.threads < 1:
                raise ConfigError(f"--threads {args.threads}: give 1 or more")
            import torch

            torch.set_num_threads(args.threads)

        out = Path(args.out) if args.out else default_out(args.proteins)
        paths = run_explain_job(files, args.proteins, settings, out, resolve_device(args.device))
    except FileNotFoundError as exc:
        print(f"kneurons explain: {exc.filename}: file not found", file=sys.stderr)
        return 2
    except (*EXPECTED_ERRORS, ModelError) as exc:
        print(f"kneurons explain: {exc}", file=sys.stderr)
        return 2
    print(f"kneurons explain: wrote {paths['html']} (and {paths['tsv'].name}, {paths['json'].name})")
    return 0
