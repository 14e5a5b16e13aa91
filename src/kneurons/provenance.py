"""Provenance checks between stages: a score table must come from the checkpoint it is used with.

Score tables (``scores/{method}.parquet``) carry the sha256 of the checkpoint they were computed
on (metadata key ``kneurons.tables.METADATA_KEY``, written by ``write_score_table``). Ranking
the neurons of one model by the scores of another gives plausible-looking but meaningless
ablation curves, so every stage that combines a checkpoint with a score table checks the hash.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from kneurons.errors import InputError
from kneurons.io import sha256_file
from kneurons.tables import score_table_metadata

log = logging.getLogger(__name__)


def check_scores_match_checkpoint(
    scores_path: str | Path,
    checkpoint: str | Path,
    meta: dict[str, Any] | None = None,
    checkpoint_sha256: str | None = None,
    require: bool = True,
) -> None:
    """Raise InputError unless the score table was computed on ``checkpoint`` (same sha256).

    ``meta`` is the table's provenance when already read (else it is read from the file);
    ``checkpoint_sha256`` saves hashing a large checkpoint twice. A table without a recorded
    checkpoint hash (not written by the workflow) is an error with ``require``, else a warning.
    """
    meta = score_table_metadata(scores_path) if meta is None else meta
    recorded = meta.get("checkpoint_sha256")
    if not recorded:
        msg = (
            f"{scores_path}: the score table records no checkpoint hash (kneurons.scores metadata), "
            f"so it cannot be checked against {checkpoint}"
        )
        if require:
            raise InputError(msg + "; re-run the scoring stage")
        log.warning(msg)
        return
    actual = checkpoint_sha256 or sha256_file(checkpoint)
    if recorded != actual:
        raise InputError(
            f"{scores_path}: scores were computed on a different model "
            f"(checkpoint sha256 {recorded[:12]}..., recorded as {meta.get('checkpoint', '?')}), "
            f"but {checkpoint} has sha256 {actual[:12]}...; "
            "re-run the scoring stage for this checkpoint"
        )
