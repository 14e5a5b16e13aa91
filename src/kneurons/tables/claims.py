"""``stats/claims.tsv`` (a verdict per claim) and ``stats/verdicts.html`` (the same table rendered,
the first thing the Snakemake report shows), with the rounding both share.

The statistics decide every verdict on full precision; only what is written for people is
rounded, here: an estimate and its interval to the decimals the interval supports (its width to 3
significant digits), other numbers to 3 significant digits, and a p-value at its test's floor
(``p_floor``: a bootstrap of B draws cannot give less than 1/B) as ``< 0.001``.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import pandas as pd

from kneurons.io import write_table_atomic, write_text_atomic
from kneurons.tables.base import read_tsv

#: ``stats/claims.tsv``: one row per claim with its verdict (the atlas shows every column).
CLAIMS_REQUIRED = ("claim", "verdict")
#: Claim columns whose numbers are rounded for people (the estimate and its interval together).
INTERVAL_COLUMNS = ("estimate", "ci_lo", "ci_hi")
#: Claim columns that hold settings or their consequences (0.95, 0.01, 1/B), written as they are.
SETTING_COLUMNS = ("confidence", "p_floor", "margin")


def _number(x: Any) -> float | None:
    """``x`` as a float, or None for text that is not a number (already written for people)."""
    if isinstance(x, str):
        try:
            return float(x)
        except ValueError:
            return None
    return None if x is None else float(x)


def _plain(x: float, decimals: int) -> str:
    """``x`` rounded to ``decimals`` (may be negative: tens, hundreds), without an exponent or ``-0``."""
    value = round(x, decimals) + 0.0  # + 0.0 turns -0.0 into 0.0
    return f"{value:.{max(decimals, 0)}f}"


def significant(x: Any, digits: int = 3) -> str:
    """``x`` to ``digits`` significant digits, in plain notation where it is readable (1e-4 to
    1e6) and in scientific notation beyond; NaN/None is empty, infinities are ``inf``/``-inf``,
    text that is not a number is kept."""
    v = _number(x)
    if v is None:
        return "" if x is None else str(x)
    if math.isnan(v):
        return ""
    if math.isinf(v) or v == 0:
        return f"{v:g}"
    exponent = math.floor(math.log10(abs(v)))
    if not -4 <= exponent < 6:
        return f"{v:.{digits - 1}e}"
    return _plain(v, digits - 1 - exponent)


def interval_texts(estimate: Any, lo: Any, hi: Any, digits: int = 3) -> tuple[str, str, str]:
    """An estimate and its interval rounded to what the interval supports: the decimals that give
    its width ``digits`` significant digits (``0.0957 [0.0528, 0.1437]``; a bound of ``1.76e-17``
    in ``[1.76e-17, 0.288]`` is ``0.000``). A zero or infinite width rounds each number to
    ``digits`` significant digits instead."""
    values = [_number(v) for v in (estimate, lo, hi)]
    if any(v is None for v in values):  # text already written for people
        return tuple(significant(v) for v in (estimate, lo, hi))  # type: ignore[return-value]
    est, low, high = values
    width = abs(high - low)
    if not (math.isfinite(width) and width > 0 and all(math.isfinite(v) for v in values)):
        return significant(est, digits), significant(low, digits), significant(high, digits)
    decimals = digits - 1 - math.floor(math.log10(width))
    return _plain(est, decimals), _plain(low, decimals), _plain(high, decimals)


def _ceil_significant(x: float, digits: int = 3) -> float:
    """``x > 0`` rounded up to ``digits`` significant digits (0.000999001 -> 0.001): a bound that
    still holds when written short."""
    scale = 10.0 ** (digits - 1 - math.floor(math.log10(x)))
    # the float error of x * scale must not push an exact value (0.001) up a step
    return math.ceil(round(x * scale, 9)) / scale


def p_text(p: Any, floor: Any = None) -> str:
    """A p-value to 3 significant digits (trailing zeros dropped: ``0.0094``, ``1``), or ``< floor``
    where it sits at its test's floor (no bootstrap draw crossed zero: the bootstrap cannot resolve
    a smaller p), the floor rounded up to 3 significant digits (a permutation test's 1 / (B + 1) =
    0.000999001 is ``< 0.001``)."""
    v, f = _number(p), _number(floor)
    if v is None:
        return "" if p is None else str(p)
    if f is not None and math.isfinite(f) and f > 0 and v <= f * (1 + 1e-9):
        return f"< {_ceil_significant(f):g}"
    return "" if math.isnan(v) else f"{v:.3g}"


def _setting_text(x: Any) -> str:
    """A setting-like number as it is (``0.95``, ``0.001``); NaN is empty, other text kept."""
    v = _number(x)
    if v is None:
        return "" if x is None else str(x)
    return "" if math.isnan(v) else f"{v:g}"


def claims_text(claims: pd.DataFrame) -> pd.DataFrame:
    """The claims table as people read it: the numbers rounded (module docstring), as text."""
    out = claims.copy().astype(object)
    if set(INTERVAL_COLUMNS) <= set(claims.columns):
        texts = [interval_texts(*row) for row in claims[list(INTERVAL_COLUMNS)].itertuples(index=False)]
        for i, col in enumerate(INTERVAL_COLUMNS):
            out[col] = [t[i] for t in texts]
    if "p_value" in claims.columns:
        floors = claims["p_floor"] if "p_floor" in claims.columns else [None] * len(claims)
        out["p_value"] = [p_text(p, f) for p, f in zip(claims["p_value"], floors, strict=True)]
    for col in SETTING_COLUMNS:
        if col in claims.columns:
            out[col] = claims[col].map(_setting_text)
    return out


def read_claims(path: str | Path) -> pd.DataFrame:
    """Read ``stats/claims.tsv`` (claims and their verdicts), every column as text (as written:
    rounded numbers, ``< 0.001`` p-values)."""
    return read_tsv(path, "claims table", CLAIMS_REQUIRED, text=True)


def write_claims(claims: pd.DataFrame, path: str | Path) -> None:
    """Write ``stats/claims.tsv`` atomically, its numbers rounded for people (``claims_text``)."""
    missing = [c for c in CLAIMS_REQUIRED if c not in claims.columns]
    if missing:
        raise ValueError(f"claims table lacks column(s) {missing}")
    write_table_atomic(claims_text(claims), path)


# -- the rendered verdict table ---------------------------------------------------------------
#: JavaScript run by a link of the Snakemake report (its html report's globals ``results`` and
#: ``app``, which its own rst links use too): show the result whose path, without its extension,
#: ends with the given one, as the report's eye button does (one click: the figure itself). An
#: embedded HTML result opens through a blob URL: Chromium refuses a data URL of more than 2 MB
#: in a frame, and the atlas is larger. In a zip report the path is a file next to the report.
SHOW_RESULT_JS = (
    "javascript:(function(f){"
    "var k=Object.keys(results).find(function(p){var s=p.slice(0,p.lastIndexOf('.'));"
    "return s==f||s.slice(-f.length-1)=='/'+f});"
    "if(!k){alert(f+' is not in this report');return}"
    "var r=results[k],m=r.mime_type,u=r.data_uri;"
    "if(m=='text/html'&&u.slice(0,5)=='data:'){var b=atob(u.slice(u.indexOf(',')+1)),"
    "a=new Uint8Array(b.length);for(var i=0;i<b.length;i++){a[i]=b.charCodeAt(i)}"
    "u=URL.createObjectURL(new Blob([a],{type:m}))}"
    "app.setView({navbarMode:'resultinfo',resultPath:k,contentPath:u,"
    "content:m=='application/pdf'?'pdf':m.slice(0,6)=='image/'?'img':'html'})"
    "})('{target}')"
)

#: The report shows its description in a narrow column centred in the window, beside the job
#: graph; the verdict table needs the width, and a centred box wider than the window would lose its
#: left edge, so the view that holds the table starts at the top left instead. The table fits a
#: 1280-px window (tests/test_report.py): short values are stacked in one cell (method, set and
#: any further short column, ``STACKED``; the estimate above its p-value), and a note wraps under
#: its claim's statement instead of taking a column of its own.
_STYLE = """
.prose.max-w-lg:has(#kn-verdicts) { max-width: 64rem; }
#kn-verdicts { overflow-x: auto; }
.justify-center:has(#kn-verdicts) { justify-content: flex-start; align-items: flex-start; }
#kn-verdicts table { font-size: 0.8rem; line-height: 1.3; margin: 0.5em 0; }
#kn-verdicts th, #kn-verdicts td { padding: 0.3em 0.5em; vertical-align: top; }
#kn-verdicts td.num, #kn-verdicts td.short { white-space: nowrap; font-variant-numeric: tabular-nums; }
#kn-verdicts td.claim { min-width: 16rem; }
#kn-verdicts .verdict { font-weight: 700; white-space: nowrap; }
#kn-verdicts .verdict .foot { font-weight: 400; white-space: normal; }
#kn-verdicts .supported { color: #1a7f37; }
#kn-verdicts .not-supported { color: #b42318; }
#kn-verdicts .inconclusive { color: #8a6100; }
#kn-verdicts .note { display: block; color: #8a6100; font-size: 0.75rem; margin-top: 0.2em; }
#kn-verdicts .sets { font-weight: 600; }
#kn-verdicts .atlas { font-size: 1rem; font-weight: 600; }
#kn-verdicts .foot { font-size: 0.75rem; color: #555; }
"""
#: Short columns shown stacked in one cell of the verdict table, in this order, where the table has
#: them (another short column, a fill, joins them here instead of widening the table).
STACKED: tuple[str, ...] = ("method", "set", "fill")


def _link(target: str, text: str) -> str:
    """A report link that shows the result named by ``target`` (a path without its extension)."""
    href = SHOW_RESULT_JS.replace("{target}", target)
    return f'<a href="{html.escape(href)}">{html.escape(text)}</a>'


def robust_text(robust: Any, other_fills: Any) -> str:
    """A claim's robustness across fills in words: ``yes``, ``no (resample: inconclusive)``, or
    empty where the run made one fill or the claim has none (claim 3)."""
    flag = str(robust).strip().lower()
    others = (
        ""
        if other_fills is None or (isinstance(other_fills, float) and math.isnan(other_fills))
        else str(other_fills)
    )
    if flag in ("true", "1"):
        return "yes"
    if flag in ("false", "0"):
        return f"no ({others})" if others else "no"
    return ""


def claimed_text(direction: str, margin: str) -> str:
    """A claim's direction and equivalence margin in symbols: ``> 0 (±0.01)``."""
    side = {"greater": "> 0", "less": "< 0"}.get(direction, direction)
    return f"{side} (±{margin})" if margin else side


def _names(names: list[str]) -> str:
    return ", ".join(names[:-1]) + f" and {names[-1]}" if len(names) > 1 else "".join(names)


def sets_summary(claims: pd.DataFrame) -> str:
    """The evaluation sets the claims judged and those whose model is at its majority baseline, in
    words for the first screen (``2 evaluation sets judged (test, new392); the model is at its
    majority baseline on 1 of them: new392, whose claims are inconclusive``); a set at baseline
    for some of its claims only (claim 5's held-out proteins) is named with those claims."""
    if not len(claims) or "set" not in claims.columns:
        return ""
    rows = claims.astype(object).fillna("").astype(str)
    notes = rows["note"] if "note" in rows.columns else pd.Series("", index=rows.index)
    at_baseline = notes.str.startswith("model at baseline")
    sets = list(dict.fromkeys(rows["set"]))
    whole = [s for s in sets if at_baseline[rows["set"] == s].all()]
    partly = {
        s: sorted(set(rows.loc[(rows["set"] == s) & at_baseline, "claim"]))
        for s in sets
        if s not in whole and at_baseline[rows["set"] == s].any()
    }
    text = f"{len(sets)} evaluation set{'s' if len(sets) > 1 else ''} judged ({', '.join(sets)}); "
    if not whole and not partly:
        return text + "the model beats its majority baseline on each."
    claims_of = _names([f"claim{'s' if len(c) > 1 else ''} {', '.join(c)} of {s}" for s, c in partly.items()])
    if whole:
        text += (
            f"the model is at its majority baseline on {len(whole)} of them: {_names(whole)}, "
            "whose claims are inconclusive"
        )
        text += f", and on the proteins of {claims_of}" if partly else ""
    else:
        text += f"the model beats its majority baseline on each, but not on the proteins of {claims_of}"
    return text + " (the note under each claim says on which proteins)."


#: What the report's verdict table says above and below its rows (``render_verdicts``); ``{pct}``
#: is the interval's level. Another table of verdicts (the planted-knowledge benchmark's) says its own.
CLAIMS_INTRO = (
    "One row per claim of the paper (and ours), each decided by a rule fixed in advance: "
    "<em>supported</em> when the {pct} interval lies on the claimed side of 0, <em>not supported</em> "
    "when it lies on the other side or within the margin, <em>inconclusive</em> otherwise."
)


def render_verdicts(
    claims: pd.DataFrame,
    heading: str = "Verdicts",
    intro: str = CLAIMS_INTRO,
    table: str = "stats/claims.tsv",
    atlas: bool = True,
) -> str:
    """The verdict table as an HTML fragment for the report's first screen: first how many sets were
    judged and how many are at their baseline (``sets_summary``); then per claim its statement and
    statistic (and its ``note``, where it has one, below them; a note the row above in its set
    already shows, shortened to ``model at baseline (as above)``), method and set (``STACKED``),
    estimate with interval above its p-value, claimed direction and margin, verdict (below it, where
    the run made several fills, whether the verdict is the same under every fill: ``robust_text``),
    and a link to its figure; then the decision rule in words and (``atlas``) a link that opens the
    neuron atlas. ``heading``, ``intro`` (HTML, ``{pct}``: the interval's level) and ``table`` (the
    TSV it renders) say what the table is."""
    text = claims_text(claims)
    cols = set(text.columns)
    conf = str(text["confidence"].iloc[0]) if "confidence" in cols and len(text) else "0.95"
    pct = f"{float(conf) * 100:g}%"
    # a column every row leaves empty (no fill: a table of older code) is not shown
    stacked = [c for c in STACKED if c in cols and text[c].fillna("").astype(str).str.strip().ne("").any()]
    has_robust = "robust" in cols and text["robust"].fillna("").astype(str).str.strip().ne("").any()
    head = [
        "#",
        "claim (statistic)",
        " / ".join(stacked),
        f"estimate [{pct} interval], p",
        "claimed",
        "verdict",
    ]
    head += ["figure"]
    rows = []
    shown: dict[str, str] = {}  # per set, the note written out last
    for r in text.fillna("").astype(str).to_dict("records"):
        figure = r.get("figure", "")
        fig_cell = (
            _link(figure.rsplit(".", 1)[0], Path(figure).stem.replace("_", " "))
            if figure.startswith("figures/") or "/figures/" in figure
            else f'<span class="foot" title="{html.escape(figure)}">none (a table)</span>'
        )
        interval = f"{r.get('estimate', '')} [{r.get('ci_lo', '')}, {r.get('ci_hi', '')}]"
        p_value = f'<br><span class="foot">p {html.escape(r["p_value"])}</span>' if r.get("p_value") else ""
        verdict = html.escape(r["verdict"])
        note = r.get("note", "").strip()
        if note and shown.get(r.get("set", "")) == note:
            # the same note as the row above in its set, said once: the rows stay short
            note_html = f'<span class="note">{html.escape(note.split(":")[0])} (as above)</span>'
        else:
            note_html = f'<span class="note">{html.escape(note)}</span>' if note else ""
        shown[r.get("set", "")] = note
        short = [  # a row's empty value (claim 3's fill) is left out of its cell
            html.escape(r[c]) if i == 0 else f'<span class="foot">{html.escape(r[c])}</span>'
            for i, c in enumerate(stacked)
            if i == 0 or r[c].strip()
        ]
        robust = robust_text(r.get("robust"), r.get("other_fills")) if has_robust else ""
        robust_html = f'<br><span class="foot">every fill: {html.escape(robust)}</span>' if robust else ""
        cells = [
            ("", html.escape(r["claim"])),
            (
                "claim",
                f'{html.escape(r.get("statement", ""))}<br><span class="foot">'
                f"{html.escape(r.get('statistic', ''))}</span>" + note_html,
            ),
            ("short", "<br>".join(short)),
            ("num", html.escape(interval) + p_value),
            ("short", html.escape(claimed_text(r.get("direction", ""), r.get("margin", "")))),
            (f"verdict {verdict.replace(' ', '-')}", verdict + robust_html),
            ("", fig_cell),
        ]
        rows.append(
            "<tr>"
            + "".join(f'<td class="{c}">{v}</td>' if c else f"<td>{v}</td>" for c, v in cells)
            + "</tr>"
        )
    reps = sorted(set(text["n_replicates"].astype(str))) if "n_replicates" in cols else []
    pooled = f" Pooled over {reps[0]} fine-tuning replicate(s)." if len(reps) == 1 else ""
    floors = sorted({p for p in text.get("p_value", pd.Series(dtype=str)).astype(str) if p.startswith("<")})
    foot = []
    if floors:
        foot.append(
            f"p {', '.join(floors)}: no bootstrap draw fell on the other side of 0; a bootstrap of B draws "
            "cannot give a p-value below 1/B (column p_floor of claims.tsv)."
        )
    if has_robust:
        foot.append(
            "fill: what an ablated unit outputs (ablate.fills); a claim is decided under each fill, and a "
            "verdict that changes with the fill is not robust."
        )
    foot.append(
        "Numbers are rounded to what their interval supports; verdicts were decided on full precision. "
        f"The table: {table} (category 0. Verdicts)."
    )
    atlas_line = (
        f'<p class="atlas">Browse the neurons: {_link("atlas/index", "open the neuron atlas")} '
        "(a self-contained page; from disk: atlas/index.html in the results folder)</p>"
    )
    summary = sets_summary(claims)
    return (
        f"<style>{_STYLE}</style>\n"
        '<div id="kn-verdicts">\n'
        f"<h2>{html.escape(heading)}</h2>\n"
        + (f'<p class="sets">{html.escape(summary)}</p>\n' if summary else "")
        + f"<table>\n<thead><tr>{''.join(f'<th>{html.escape(h)}</th>' for h in head)}</tr></thead>\n"
        f"<tbody>\n{chr(10).join(rows)}\n</tbody>\n</table>\n"
        f"<p>{intro.format(pct=pct)}{pooled} Click a figure to see it.</p>\n"
        f"{atlas_line if atlas else ''}\n"
        f'<p class="foot">{" ".join(html.escape(f) for f in foot)}</p>\n'
        "</div>\n"
    )


def write_verdicts(claims: pd.DataFrame, path: str | Path, **how: Any) -> None:
    """Write ``stats/verdicts.html`` (``render_verdicts``; ``how``: its heading, intro, table and
    atlas link) atomically."""
    write_text_atomic(path, render_verdicts(claims, **how))
