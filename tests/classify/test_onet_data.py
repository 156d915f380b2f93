from __future__ import annotations

from collections import Counter

import pytest

from autocoder.classify import data as D
from autocoder.devsplit import apply_holdout, holdout_titles, make_dev_split
from autocoder.records import normalize_text


@pytest.mark.shared_data
def test_onet_training_rows_exclude_dev_titles(shared_data_dir) -> None:
    from autocoder.taxonomy.onet import import_onet, read_alternate_titles

    release = shared_data_dir / "onet_29.2"
    taxonomy = import_onet(release)
    dev = make_dev_split(read_alternate_titles(release))
    held = holdout_titles(dev)
    assert apply_holdout(taxonomy, held) > 0
    rows = D.taxonomy_rows(
        taxonomy, kinds=("title", "alt_title", "reported_title"), title_duties_pairs=0
    )
    leaked = {normalize_text(r["title"]) for r in rows} & held
    # an official occupation title may coincide with a dev title; alternate titles never do
    official = {normalize_text(c.title) for c in taxonomy.leaves()}
    assert leaked <= official
    assert len(Counter(r["code"] for r in rows)) == len(taxonomy.leaves())
    splits = D.stratified_split(D.build_dataset(rows), val_fraction=0.1, seed=0)
    assert set(splits["train"]["code"]) == set(taxonomy.leaf_codes())
