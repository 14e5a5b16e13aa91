"""The ``kneurons`` command: ``kneurons plan`` prints a configuration's cost plan (``kneurons.plan``)
in units people read, with the budget warnings, for the configuration Snakemake would run with the
same ``--configfile`` / ``--config`` arguments (``kneurons.config_cli.read_workflow_config``);
``kneurons convert`` turns ESM-2 weights between the fair-esm and Hugging Face layouts
(``kneurons.model.backends.hf.convert``, which imports torch);
``kneurons explain`` explains a file of proteins with a finished run (``kneurons.explain.cli``).

Torch-free until ``convert`` or ``explain`` is asked for.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import Any

from kneurons.config import model_shape
from kneurons.config_cli import EMBEDDED_DEFAULT, read_workflow_config
from kneurons.errors import ConfigError
from kneurons.plan import (
    FAR_OVER_BUDGET,
    THROUGHPUT,
    feature_note,
    ig_note,
    one_setting_under_budget,
    plan_costs,
    total_hours,
    with_setting,
)


def readable(x: float) -> str:
    """A count or an amount of hours for people: 3 significant digits, thousands as ``k``, millions
    as ``M``, billions as ``G``, trillions as ``T`` (``1.2e+06`` -> ``1.2 M``)."""
    if x == 0 or not math.isfinite(x):
        return f"{x:g}"
    for factor, suffix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(x) >= factor * 0.9995:  # 999,950 is 1 M, not 1e+03 k
            return f"{x / factor:.3g} {suffix}"
    return f"{x:.3g}"


def duration(hours: float) -> str:
    """Hours as a duration in the largest unit that is at least one: minutes, hours, days or years."""
    for size, unit in ((24 * 365, "years"), (24, "days"), (1, "h")):
        if hours >= size:
            return f"{hours / size:.3g} {unit}"
    return f"{60 * hours:.2g} min"


def format_plan(cfg: dict[str, Any], gpu: str = "a100", budget_hours: float = 24.0) -> str:
    """The plan as text: one row per stage (jobs, passes, hours on this CPU and on ``gpu``), then
    warnings: each stage over ``budget_hours`` on ``gpu`` with the settings that cap it, and a run
    ``FAR_OVER_BUDGET`` times over its budget with the one setting that brings it under."""
    costs, data = plan_costs(cfg)
    layers, dim, _ = model_shape(cfg)
    cpu_rate, gpu_rate = THROUGHPUT["cpu"][0], THROUGHPUT[gpu][0]
    longest = max(len(c.stage) for c in costs)
    w = 22 if longest <= 22 else longest + 1  # the stage column fits the longest name
    lines = [
        f"model {cfg['model']['name']}: {layers} layers, {dim} dim",
        f"data ({data.source}{'' if data.exact else ', estimated'}): "
        + ", ".join(f"{k} {v:,}" for k, v in data.n.items())
        + f" proteins, {data.mean_tokens:.0f} tokens each, {data.n_classes} classes",
        f"{'stage':<{w}}{'jobs':>6}{'forward':>12}{'backward':>12}{'cpu h':>10}{gpu + ' h':>10}",
    ]
    warnings = []
    cpu_total = gpu_total = 0.0
    for c in costs:
        cpu_h, gpu_h = c.hours(cpu_rate, dim, data.mean_tokens), c.hours(gpu_rate, dim, data.mean_tokens)
        cpu_total, gpu_total = cpu_total + cpu_h, gpu_total + gpu_h
        lines.append(
            f"{c.stage:<{w}}{c.jobs:>6}{readable(c.forward):>12}{readable(c.backward):>12}"
            f"{readable(cpu_h):>10}{readable(gpu_h):>10}"
        )
        if gpu_h > budget_hours:
            warnings.append(
                f"warning: {c.stage} needs ~{readable(gpu_h)} h ({duration(gpu_h)}) on {gpu} "
                f"(budget {budget_hours:g} h); cap {c.cap}"
            )
    lines.append(f"{'total':<{w}}{'':>30}{readable(cpu_total):>10}{readable(gpu_total):>10}")
    lines.append(f"in all: {duration(cpu_total)} on one CPU thread, {duration(gpu_total)} on one {gpu}")
    lines.append("forward/backward: token-layers (one token through one layer); " + THROUGHPUT[gpu][1])
    for note in (ig_note(cfg), feature_note(cfg)):
        if note:
            lines.append(note)
    if gpu_total > FAR_OVER_BUDGET * budget_hours:
        head = (
            f"warning: the whole run needs ~{readable(gpu_total)} h ({duration(gpu_total)}) on {gpu}, "
            f"{gpu_total / budget_hours:.0f}x the budget of {budget_hours:g} h"
        )
        fix = one_setting_under_budget(cfg, gpu_rate, budget_hours)
        if fix is None:
            warnings.append(f"{head}; no single setting brings it under: shrink several (the caps above)")
        else:
            key, value = fix
            after = total_hours(with_setting(cfg, key, value), gpu_rate)
            warnings.append(
                f"{head}; one setting brings it under: {key}: {value} "
                f"(now {_setting(cfg, key)}; then ~{readable(after)} h)"
            )
    return "\n".join(lines + warnings)


def _setting(cfg: dict[str, Any], key: str) -> Any:
    node: Any = cfg
    for part in key.split("."):
        node = node[part]
    return "null, no cap" if node is None else node


def main(argv: Sequence[str] | None = None) -> int:
    """``kneurons plan [--configfile FILE ...] [--config KEY=VALUE ...] [--replace-workflow-config]
    [--gpu a100] [--budget-hours 24]``: print the cost plan of the configuration that Snakemake runs
    with the same arguments from this working directory (the embedded default, then the files).

    ``kneurons convert ...`` (ESM-2 weights between fair-esm and HF layouts) is handed to
    ``kneurons.model.backends.hf.convert.main``, which imports torch; ``kneurons explain ...``
    (proteins explained with a finished run) to ``kneurons.explain.cli.main``.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["convert"]:
        from kneurons.model.backends.hf.convert import main as convert_main

        return convert_main(argv[1:])
    if argv[:1] == ["explain"]:
        from kneurons.explain.cli import main as explain_main

        return explain_main(argv[1:])
    parser = argparse.ArgumentParser(
        prog="kneurons plan", description="The cost plan of a configuration, before anything runs."
    )
    parser.add_argument(
        "command", choices=["plan"], help="plan (or: kneurons convert --help, kneurons explain --help)"
    )
    parser.add_argument(
        "--configfile",
        nargs="+",
        action="extend",
        default=[],
        metavar="FILE",
        help=f"merged over the embedded default ({EMBEDDED_DEFAULT}) as by snakemake --configfile",
    )
    parser.add_argument(
        "--config", nargs="+", action="extend", default=[], metavar="KEY=VALUE", help="as snakemake --config"
    )
    parser.add_argument(
        "--replace-workflow-config",
        action="store_true",
        help=f"leave out the embedded default ({EMBEDDED_DEFAULT}), as Snakemake's option does",
    )
    parser.add_argument("--gpu", default="a100", choices=[k for k in THROUGHPUT if k != "cpu"])
    parser.add_argument(
        "--budget-hours", type=float, default=24.0, help="warn when a stage needs more GPU hours"
    )
    args = parser.parse_args(argv)
    try:
        cfg, sources = read_workflow_config(
            args.configfile, args.config, replace_default=args.replace_workflow_config
        )
    except ConfigError as exc:
        print(f"kneurons plan: {exc}", file=sys.stderr)
        return 2
    print(f"config: {', then '.join(sources)} (merged as Snakemake merges them)")
    print(format_plan(cfg, args.gpu, args.budget_hours))
    return 0


if __name__ == "__main__":
    sys.exit(main())
