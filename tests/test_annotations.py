"""UniProt feature text and motif positions -> 1-based residue positions (kneurons.data.annotations)."""

from __future__ import annotations

import pandas as pd
import pytest

from kneurons.data.annotations import (
    ParseStats,
    annotation_columns,
    parse_position_list,
    parse_uniprot_sites,
    site_positions,
)
from kneurons.errors import InputError

# Shaped like UniProt's REST TSV (fields ft_act_site, ft_binding), evidence codes included.
ACT = (
    'ACT_SITE 95; /note="Proton acceptor"; /evidence="ECO:0000255|PROSITE-ProRule:PRU10001"; '
    'ACT_SITE 120; /note="Nucleophile; for the second step"; /evidence="ECO:0000269|PubMed:1234567"'
)
BIND = (
    'BINDING 10..14; /ligand="NAD(+)"; /ligand_id="ChEBI:CHEBI:57540"; /evidence="ECO:0000250"; '
    'BINDING 37; /ligand="Zn(2+)"; /ligand_id="ChEBI:CHEBI:29105"; /ligand_note="catalytic; BINDING 999"'
)


def test_active_sites_single_positions():
    assert parse_uniprot_sites(ACT) == [95, 120]


def test_binding_ranges_expand_and_quoted_semicolons_are_not_features():
    # "BINDING 999" inside a quoted note must not become a site.
    assert parse_uniprot_sites(BIND) == [10, 11, 12, 13, 14, 37]


def test_unknown_ends_are_skipped_and_fuzzy_ends_kept():
    stats = ParseStats()
    text = 'BINDING ?..12; /ligand="x"; BINDING <1..3; /ligand="y"; ACT_SITE ?; /note="z"; BINDING 40..>42'
    assert parse_uniprot_sites(text, stats=stats) == [1, 2, 3, 40, 41, 42]
    assert stats.unknown_location == 2
    assert stats.features == 4


def test_positions_beyond_a_cropped_sequence_are_dropped_and_counted():
    stats = ParseStats()
    assert parse_uniprot_sites("ACT_SITE 5; ACT_SITE 50", length=20, stats=stats) == [5]
    assert stats.beyond_sequence == 1


def test_key_filter():
    both = ACT + "; " + BIND
    assert parse_uniprot_sites(both, keys=["ACT_SITE"]) == [95, 120]


@pytest.mark.parametrize("empty", [None, float("nan"), "", "   "])
def test_empty_is_no_site(empty):
    assert parse_uniprot_sites(empty) == []
    assert parse_position_list(empty) == []


@pytest.mark.parametrize("bad", ["active site at 95", "ACT_SITE ninety", "BINDING 20..10"])
def test_malformed_text_names_the_source(bad):
    with pytest.raises(InputError, match="split.tsv line 7"):
        parse_uniprot_sites(bad, source="split.tsv line 7")


def test_position_lists():
    assert parse_position_list("3;4;5;4") == [3, 4, 5]
    assert parse_position_list("1, 2 9", length=5) == [1, 2]
    with pytest.raises(InputError, match="motif_sites"):
        parse_position_list("3;x", source="motif_sites")
    with pytest.raises(InputError):
        parse_position_list("0")


def test_site_positions_union_and_unannotated_proteins():
    df = pd.DataFrame(
        {
            "sequence": ["A" * 130, "A" * 30, "A" * 30],
            "active_site": [ACT, "", None],
            "binding_site": [BIND, 'BINDING 3..4; /ligand="ATP"', ""],
        }
    )
    assert annotation_columns(df) == ["active_site", "binding_site"]
    sites, stats = site_positions(df)
    assert sites[0] == [10, 11, 12, 13, 14, 37, 95, 120]
    assert sites[1] == [3, 4]
    assert sites[2] is None  # no annotation at all: left out, not "no site"
    assert stats.features == 5


def test_site_positions_error_names_line_and_column():
    df = pd.DataFrame({"sequence": ["AAAA", "AAAA"], "active_site": ["ACT_SITE 2", "oops"]})
    with pytest.raises(InputError, match=r"split.tsv line 3, column active_site"):
        site_positions(df, source="split.tsv")


def test_annotation_columns_ignore_empty_columns():
    df = pd.DataFrame({"sequence": ["AA"], "active_site": [""], "motif_sites": ["1;2"]})
    assert annotation_columns(df) == ["motif_sites"]
