"""Families of near-identical sequences among a ranking's first rows (`interpret.families`)."""

from __future__ import annotations

import pandas as pd

from deeprc_hopfield.interpret.families import sequence_families


def _families(rows: list[tuple[str, str | None]], limit: int = 1000) -> tuple[list, list]:
    table = pd.DataFrame(rows, columns=["junction_aa", "v_call"])
    family, size = sequence_families(table["junction_aa"], table["v_call"], limit)
    return family.tolist(), size.tolist()


def test_one_substitution_variants_of_one_v_family_are_one_family_numbered_by_its_best_row():
    """A lineage whose members differ by two substitutions joins through its intermediate; another V family, another
    length or two substitutions without an intermediate stay apart; an unknown V links to either."""
    rows = [("CASSLGQAYEQYF", "TRBV5-1"),   # 1: family 1
            ("CASSPDRGNTEAFF", "TRBV7-9"),  # 2: alone (another length)
            ("CASSLGQGYEQYF", "TRBV5-6"),   # 3: one substitution from 1, same family TRBV5
            ("CASSLGRGYEQYF", "TRBV5-1"),   # 4: one from 3, two from 1: joins through 3
            ("CASSLGQAYEQYF", "TRBV6-5"),   # 5: 1's CDR3 in another V family: apart
            ("CASSLGQAYEQHF", None),        # 6: one from 1, unknown V: joins 1 (and so 5's family is 1's too)
            ("CASSWGQAYEKYF", "TRBV5-1")]   # 7: two from 1 and from each member: alone
    family, size = _families(rows)
    assert family == [1, 2, 1, 1, 1, 1, 7]
    assert size == [5, 1, 5, 5, 5, 5, 1]


def test_only_the_first_rows_are_grouped_and_the_anchors_are_ignored():
    rows = [("CASSLGQAYEQYF", "TRBV5-1"), ("CASSLGQAYEQYW", "TRBV5-1"), ("CASSLGQGYEQYF", "TRBV5-1")]
    family, size = _families(rows, limit=2)
    assert family[:2] == [1, 1] and pd.isna(family[2]) and size[:2] == [2, 2] and pd.isna(size[2])
    assert _families([]) == ([], [])


def test_an_attended_table_groups_each_repertoire_s_list_on_its_own():
    """`attend`/`predict --attended`: families within one repertoire's top list, never across two lists."""
    from deeprc_hopfield.infer import with_families

    attended = pd.DataFrame({"repertoire_id": ["A", "A", "A", "B", "B"], "rank": [1, 2, 3, 1, 2],
                             "attention": [0.5, 0.3, 0.1, 0.6, 0.2],
                             "junction_aa": ["CASSLGQAYEQYF", "CASSPDRGNTEAFF", "CASSLGQGYEQYF", "CASSLGQGYEQYF",
                                             "CAWSTGTDTQYF"],
                             "v_call": "TRBV5-1", "j_call": "TRBJ2-7", "duplicate_count": [3, 1, 2, 5, 1]})
    table = with_families(attended)
    assert list(table.columns[6:]) == ["duplicate_count", "family", "family_size"]
    assert table["family"].tolist() == [1, 2, 1, 1, 2]  # B's first row is A's third's variant: B's own family 1
    assert table["family_size"].tolist() == [2, 1, 2, 1, 1]
