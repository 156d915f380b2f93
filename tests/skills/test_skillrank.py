from __future__ import annotations

import numpy as np
import pytest

from autocoder.skills.skillrank import (
    SkillRank,
    recall_at_k,
    skillrank_data,
    split_codes,
    top_skills,
    train_skillrank,
)


def test_skillrank_data_weights_essential_above_optional(taxonomy) -> None:
    data = skillrank_data(taxonomy)
    assert len(set(data.codes)) == 40 and len(data.titles) == 120  # title + 2 alt titles
    weights = data.targets["1111.0"]
    assert sorted(set(weights.values())) == [0.5, 1.0]
    assert len(data.skill_uris) == len(data.skill_labels)


def test_split_codes_is_a_seeded_partition() -> None:
    codes = [f"c{i}" for i in range(50)]
    split = split_codes(codes, seed=3)
    assert split == split_codes(codes, seed=3)
    assert sorted(split.values()).count("val") == 5 and list(split.values()).count("test") == 5


def test_recall_at_k() -> None:
    proba = np.array([[0.5, 0.3, 0.2], [0.1, 0.2, 0.7]])
    assert recall_at_k(proba, [{0, 2}, {0}], 1) == pytest.approx((1 + 0) / 2)
    assert recall_at_k(proba, [{0, 2}, {0}], 3) == pytest.approx(1.0)


def test_skillrank_learns_group_skills_for_unseen_titles(taxonomy, tmp_path) -> None:
    report = train_skillrank(taxonomy, tmp_path / "m", model=SkillRank(dim=16, lr=0.05), plot=True)
    # test occupations are unseen; their group's skills are learnable from the title words
    assert report["recall@10"] > report["popularity_recall@10"]
    assert report["recall@10"] > 0.5
    hist = [h["train_kl"] for h in SkillRank.load(tmp_path / "m")[0].history_]
    assert hist[-1] < hist[0]
    assert (tmp_path / "m" / "job2vec_tsne.png").stat().st_size > 1000


def test_skillrank_save_load_roundtrip_and_top_skills(taxonomy, tmp_path) -> None:
    data = skillrank_data(taxonomy)
    model = SkillRank(dim=8, max_epochs=3).fit(
        data.titles, data.codes, data.targets, data.skill_uris
    )
    model.save(tmp_path / "sr", skill_labels=data.skill_labels)
    loaded, labels = SkillRank.load(tmp_path / "sr")
    a = model.predict_proba(["managers worker 3"])
    assert np.allclose(a, loaded.predict_proba(["managers worker 3"]), atol=1e-6)
    assert a.sum() == pytest.approx(1.0, abs=1e-4)
    top = top_skills(loaded, labels, "managers worker 3", top=3)
    assert len(top) == 3 and top[0][2] >= top[1][2] >= top[2][2]
    assert loaded.job2vec(["x"]).shape == (1, 8) and loaded.skill2vec().shape[1] == 8


def test_skillrank_load_names_a_missing_model(tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="autocoder skills train"):
        SkillRank.load(tmp_path)


def test_skillrank_load_never_unpickles_code(taxonomy, tmp_path, monkeypatch) -> None:
    """phi.pt is read with weights_only=True, whatever torch's default is."""
    import torch

    data = skillrank_data(taxonomy)
    model = SkillRank(dim=8, max_epochs=1).fit(
        data.titles, data.codes, data.targets, data.skill_uris
    )
    model.save(tmp_path / "sr", skill_labels=data.skill_labels)
    seen: list[object] = []
    real_load = torch.load

    def load(*args, **kwargs):
        seen.append(kwargs.get("weights_only"))
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", load)
    SkillRank.load(tmp_path / "sr")
    assert seen == [True]
