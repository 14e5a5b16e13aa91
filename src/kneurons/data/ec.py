"""EC numbers: parsing, validation and truncation to a label level.

UniProt writes EC numbers as four dot-separated parts: complete (``1.1.1.1``), incomplete
(``3.4.-.-``: undefined parts are ``-`` and only trailing parts may be undefined) or
preliminary (``4.2.2.n1``: an ``n`` part is a number ExPASy has not assigned yet). A protein
with several numbers lists them separated by ``; ``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Names of the seven EC classes (level 1), always known.
EC_CLASS_NAMES: dict[str, str] = {
    "1": "Oxidoreductases",
    "2": "Transferases",
    "3": "Hydrolases",
    "4": "Lyases",
    "5": "Isomerases",
    "6": "Ligases",
    "7": "Translocases",
}

_PART = r"(?:\d+|-|n\d*)"
_EC_RE = re.compile(rf"^([1-7])\.({_PART})\.({_PART})\.({_PART})$")


@dataclass(frozen=True)
class ECNumber:
    """One EC number split into its four parts (strings: digits, ``-`` or ``n``-numbers)."""

    parts: tuple[str, str, str, str]

    def __str__(self) -> str:
        return ".".join(self.parts)

    @property
    def incomplete(self) -> bool:
        """True for numbers with undefined (``-``) parts, e.g. ``3.4.-.-``."""
        return "-" in self.parts

    @property
    def preliminary(self) -> bool:
        """True for numbers with a preliminary ``n`` part, e.g. ``4.2.2.n1``."""
        return any(p.startswith("n") for p in self.parts)

    @property
    def ec_class(self) -> str:
        """Level-1 class (``"1"`` .. ``"7"``)."""
        return self.parts[0]

    def prefix(self, level: int) -> str | None:
        """The number truncated to ``level`` parts, or None when a part within ``level`` is not
        a plain number (``-`` or preliminary ``n``): such a number does not define the label."""
        head = self.parts[:level]
        if any(not p.isdigit() for p in head):
            return None
        return ".".join(head)


def level_labels(ecs: list[ECNumber], level: int) -> set[str]:
    """The labels at ``level`` that a protein's EC numbers state: every number that defines the level
    (complete, incomplete or preliminary alike: ``3.2.2.n1`` states class 3); one that leaves it
    undefined (``3.-.-.-`` at level 2) states none."""
    return {lab for lab in (e.prefix(level) for e in ecs) if lab is not None}


def parse_ec(text: str) -> ECNumber:
    """Parse one EC number (surrounding whitespace and an ``EC`` prefix are tolerated).

    Raises ValueError with the offending value when ``text`` is not an EC number, including
    numbers where a defined part follows an undefined one (``3.-.1.1``).
    """
    s = text.strip()
    if s[:2].upper() == "EC":
        s = s[2:].lstrip(" :=")
    m = _EC_RE.match(s)
    if not m:
        raise ValueError(f"invalid EC number {text.strip()!r} (expected e.g. 1.1.1.1, 3.4.-.- or 4.2.2.n1)")
    parts = m.groups()
    seen_dash = False
    for p in parts:
        if p == "-":
            seen_dash = True
        elif seen_dash:
            raise ValueError(f"invalid EC number {text.strip()!r}: a defined part follows '-'")
    return ECNumber(parts)  # type: ignore[arg-type]


def parse_ec_list(text: str | None) -> list[ECNumber]:
    """Parse a UniProt EC cell (``; ``-separated; ``,`` also accepted); empty -> []."""
    if text is None:
        return []
    s = str(text).strip()
    if not s or s.lower() == "nan":
        return []
    items = [t for t in re.split(r"[;,]", s) if t.strip()]
    return [parse_ec(t) for t in items]


def format_ec_list(ecs: list[ECNumber]) -> str:
    """Join EC numbers the UniProt way (``; ``)."""
    return "; ".join(str(e) for e in ecs)


def read_enzclass(path: str) -> dict[str, str]:
    """Read ExPASy's ``enzclass.txt`` into ``{"1": "Oxidoreductases", "1.1": ..., "1.1.1": ...}``.

    Lines look like ``1. 1. 1.-    With NAD(+) or NADP(+) as acceptor.``; header, separator
    and footer lines are skipped. The trailing full stop of a name is removed.
    """
    line_re = re.compile(r"^\s*(\d+)\.\s*(\d+|-)\.\s*(\d+|-)\.\s*-\s+(.+?)\s*$")
    names: dict[str, str] = {}
    with open(path, encoding="utf-8-sig", errors="replace") as fh:
        for line in fh:
            m = line_re.match(line)
            if not m:
                continue
            parts = [p for p in m.groups()[:3] if p != "-"]
            name = m.group(4).rstrip(".").strip()
            names[".".join(parts)] = name
    return names
