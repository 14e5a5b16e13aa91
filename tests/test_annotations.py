"""UniProt feature text and motif positions -> 1-based residue positions (kneurons.data.annotations)."""

from __future__ import annotations

import pandas as pd
import pytest

from kneurons.data.annotations import (
    FEATURE_COLUMN,
    FEATURE_COLUMNS,
    ParseStats,
    annotation_columns,
    column_instances,
    parse_position_list,
    parse_uniprot_features,
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


# -- every per-residue feature column, as UniProt writes it (REST TSV / website export) ----------
#: One protein's text per column (``FEATURE_COLUMNS``), shaped like UniProt's TSV: several features
#: joined by "; ", qualifiers quoted (with ";" inside), evidence codes, a repeat's number, an
#: unknown end, and the instances expected from it: (group, 1-based residues).
COLUMN_TEXTS: dict[str, tuple[str, list[tuple[str, list[int]]]]] = {
    "active_site": (
        'ACT_SITE 46; /note="Proton acceptor"; /evidence="ECO:0000255|PROSITE-ProRule:PRU10001"; '
        'ACT_SITE 175; /note="Nucleophile; for the second step"; /evidence="ECO:0000269|PubMed:8591028"; '
        "ACT_SITE 190",
        [("Proton acceptor", [46]), ("Nucleophile", [175]), ("", [190])],
    ),
    "binding_site": (
        'BINDING 10..14; /ligand="NAD(+)"; /ligand_id="ChEBI:CHEBI:57540"; '
        '/evidence="ECO:0000250|UniProtKB:P00330"; BINDING 37; /ligand="Zn(2+)"; '
        '/ligand_id="ChEBI:CHEBI:29105"; /ligand_label="1"; /ligand_note="catalytic; BINDING 999"; '
        '/evidence="ECO:0000269|PubMed:1234567"; BINDING 47; /ligand="Zn(2+)"; '
        '/ligand_id="ChEBI:CHEBI:29105"; /ligand_label="1"; /ligand_note="catalytic"',
        [("NAD(+)", [10, 11, 12, 13, 14]), ("Zn(2+)", [37]), ("Zn(2+)", [47])],
    ),
    "site": (
        'SITE 88..89; /note="Cleavage; by autolysis"; /evidence="ECO:0000250"; '
        'SITE 120; /note="Transition state stabilizer"',
        [("Cleavage", [88, 89]), ("Transition state stabilizer", [120])],
    ),
    "motif": (
        "MOTIF 15..18; /note=\"'HIGH' region\"; MOTIF 40..44; /note=\"'KMSKS' region\"; "
        '/evidence="ECO:0000255|HAMAP-Rule:MF_00022"',
        [("'HIGH' region", [15, 16, 17, 18]), ("'KMSKS' region", [40, 41, 42, 43, 44])],
    ),
    "region": (
        'REGION 1..5; /note="Disordered"; /evidence="ECO:0000256|SAM:MobiDB-lite"; '
        'REGION 100..102; /note="Interaction with NAD"; /evidence="ECO:0000269|PubMed:1"',
        [("Disordered", [1, 2, 3, 4, 5]), ("Interaction with NAD", [100, 101, 102])],
    ),
    "domain": (
        'DOMAIN 20..22; /note="EF-hand 1"; /evidence="ECO:0000255|PROSITE-ProRule:PRU00448"; '
        'DOMAIN 70..71; /note="EF-hand 2"; /evidence="ECO:0000255|PROSITE-ProRule:PRU00448"; '
        'DOMAIN <1..3; /note="Protein kinase"',
        [("EF-hand", [20, 21, 22]), ("EF-hand", [70, 71]), ("Protein kinase", [1, 2, 3])],
    ),
    "zinc_finger": (
        'ZN_FING 130..132; /note="C2H2-type 1"; /evidence="ECO:0000255|PROSITE-ProRule:PRU00042"; '
        'ZN_FING 158..159; /note="C2H2-type 2"; /evidence="ECO:0000255|PROSITE-ProRule:PRU00042"',
        [("C2H2-type", [130, 131, 132]), ("C2H2-type", [158, 159])],
    ),
    "dna_binding": (
        'DNA_BIND 102..104; /note="H-T-H motif"; /evidence="ECO:0000255|PROSITE-ProRule:PRU00159"; '
        "DNA_BIND 150..151",
        [("H-T-H motif", [102, 103, 104]), ("", [150, 151])],
    ),
    # a bond's location names its two cysteines; an interchain bond one; "?70" is unknown
    "disulfide_bond": (
        'DISULFID 30..95; /evidence="ECO:0000269|PubMed:2"; DISULFID 50; '
        '/note="Interchain (with C-12 in subunit beta)"; DISULFID 60..?70; /evidence="ECO:0000255"',
        [("", [30, 95]), ("", [50])],
    ),
    "modified_residue": (
        'MOD_RES 2; /note="N-acetylserine"; /evidence="ECO:0000269|PubMed:2"; '
        'MOD_RES 44; /note="Phosphoserine; by PKA"; /evidence="ECO:0007744|PubMed:19369195"; '
        'MOD_RES 51; /note="Phosphoserine"',
        [("N-acetylserine", [2]), ("Phosphoserine", [44]), ("Phosphoserine", [51])],
    ),
    "signal_peptide": ('SIGNAL 1..4; /evidence="ECO:0000255"', [("", [1, 2, 3, 4])]),
    "transmembrane": (
        'TRANSMEM 140..142; /note="Helical"; /evidence="ECO:0000255"; TRANSMEM 160..161; /note="Helical"',
        [("Helical", [140, 141, 142]), ("Helical", [160, 161])],
    ),
    "helix": (
        'HELIX 64..66; /evidence="ECO:0007829|PDB:5DM6"; HELIX 80..81; /evidence="ECO:0007829|PDB:2ZJR"',
        [("", [64, 65, 66]), ("", [80, 81])],
    ),
    "beta_strand": ('STRAND 10..12; /evidence="ECO:0007829|PDB:5DM6"', [("", [10, 11, 12])]),
    "turn": ('TURN 13..15; /evidence="ECO:0007829|PDB:5DM6"', [("", [13, 14, 15])]),
}


def test_every_feature_column_has_a_recorded_text():
    assert set(COLUMN_TEXTS) == {c.column for c in FEATURE_COLUMNS}
    assert len({c.header for c in FEATURE_COLUMNS}) == len(FEATURE_COLUMNS)
    assert {c.column for c in FEATURE_COLUMNS if c.catalytic} == {"active_site", "binding_site"}


@pytest.mark.parametrize("column", sorted(COLUMN_TEXTS))
def test_each_feature_column_parses_into_instances_as_uniprot_writes_it(column):
    text, expected = COLUMN_TEXTS[column]
    stats = ParseStats()
    assert column_instances(text, FEATURE_COLUMN[column], length=200, stats=stats) == expected
    assert stats.features == len(expected) + (column == "disulfide_bond")  # the unknown end counted
    assert stats.unknown_location == (column == "disulfide_bond")


def test_instances_of_another_key_and_beyond_a_cropped_sequence_are_counted():
    stats = ParseStats()
    text = 'DOMAIN 8..12; /note="SH3"; REPEAT 1..3; /note="1"; DOMAIN 30..40; /note="SH2"'
    assert column_instances(text, FEATURE_COLUMN["domain"], length=10, stats=stats) == [("SH3", [8, 9, 10])]
    assert stats.skipped_keys == {"REPEAT": 1} and stats.beyond_sequence == 2 + 11
    bond = FEATURE_COLUMN["disulfide_bond"]
    assert column_instances("DISULFID 5..40", bond, length=20) == [("", [5])]  # one cysteine left


def test_features_keep_their_qualifiers_with_semicolons_inside():
    (first, second) = parse_uniprot_features(COLUMN_TEXTS["binding_site"][0])[:2]
    assert (first.key, first.start, first.stop) == ("BINDING", 10, 14)
    assert first.qualifiers == {
        "ligand": "NAD(+)",
        "ligand_id": "ChEBI:CHEBI:57540",
        "evidence": "ECO:0000250|UniProtKB:P00330",
    }
    assert second.qualifiers["ligand_note"] == "catalytic; BINDING 999"
    with pytest.raises(InputError, match="split.tsv line 4, column domain: invalid location 'DOMAIN 9..3'"):
        column_instances("DOMAIN 9..3", FEATURE_COLUMN["domain"], source="split.tsv line 4, column domain")
