"""Posting-style title noise (autocoder.noise): seeded, additive, and what the normaliser undoes."""

from __future__ import annotations

import pandas as pd

from autocoder.noise import make_noisy, noisy_titles
from autocoder.titles import clean_title


def test_noise_is_seeded_and_keeps_the_title() -> None:
    titles = ["Registered Nurse", "Line Cook", "Truck Driver"] * 20
    a, b = noisy_titles(titles, seed=3), noisy_titles(titles, seed=3)
    assert a == b and a != noisy_titles(titles, seed=4)
    assert all(t.lower() in n.lower() for t, n in zip(titles, a, strict=True))
    assert sum(n != t for t, n in zip(titles, a, strict=True)) == len(titles)  # always noise


def test_the_normaliser_undoes_most_of_it() -> None:
    titles = ["Registered Nurse", "Line Cook", "Truck Driver", "Payroll Specialist"] * 25
    back = [clean_title(n) for n in noisy_titles(titles, seed=1)]
    same = sum(b.lower() == t.lower() for b, t in zip(back, titles, strict=True))
    assert same / len(titles) > 0.7


def test_make_noisy_keeps_ids_and_codes() -> None:
    dev = pd.DataFrame({"id": ["a", "b"], "title": ["Cook", "Nurse"], "codes": ["1", "2;3"]})
    out = make_noisy(dev, seed=0)
    assert list(out.columns) == ["id", "title", "codes"]
    assert list(out["id"]) == ["a", "b"] and list(out["codes"]) == ["1", "2;3"]
