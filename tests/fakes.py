"""Test doubles for unit tests only (each has a real counterpart tested elsewhere).

The package-wide ones (fake OpenAI server, hashing embedder) are in ``autocoder.testing``.
"""

from __future__ import annotations

import numpy as np

from autocoder.records import as_records
from autocoder.taxonomy.model import Code, Taxonomy


class KeywordPredictor:
    """Predicts code by keyword; confidence 0.9 for a hit, uniform otherwise."""

    def __init__(self, keywords: dict[str, str], fail_on: str | None = None) -> None:
        self.keywords = keywords
        self.fail_on = fail_on
        self.classes_ = np.asarray(sorted(set(keywords.values())))
        self.calls = 0

    def predict_proba(self, X: object) -> np.ndarray:
        self.calls += 1
        records = as_records(X)
        k = len(self.classes_)
        out = np.full((len(records), k), 1.0 / k)
        for i, r in enumerate(records):
            text = f"{r.title} {r.duties}".lower()
            if self.fail_on and self.fail_on in text:
                raise RuntimeError("model crashed")
            for word, code in self.keywords.items():
                if word in text:
                    out[i] = 0.1 / max(k - 1, 1)
                    out[i, list(self.classes_).index(code)] = 0.9
                    break
        return out


def tiny_taxonomy() -> Taxonomy:
    codes = [
        Code("29-0000", "Healthcare Practitioners", 1, "major"),
        Code("15-0000", "Computer and Mathematical", 1, "major"),
        Code(
            "29-1141.00",
            "Registered Nurses",
            2,
            "onet",
            "29-0000",
            description="Assess patient health problems and needs, provide nursing care.",
            alt_titles=["Staff Nurse", "RN"],
            tasks=["Administer medications to patients."],
        ),
        Code(
            "15-1252.00",
            "Software Developers",
            2,
            "onet",
            "15-0000",
            description="Design and develop computer software applications.",
            alt_titles=["Java Developer", "Programmer"],
            tasks=["Write and test program code."],
        ),
        Code(
            "53-3032.00",
            "Heavy and Tractor-Trailer Truck Drivers",
            2,
            "onet",
            None,
            description="Drive tractor-trailer trucks to transport goods.",
            alt_titles=["Truck Driver", "HGV Driver"],
            tasks=["Inspect the truck before trips."],
        ),
    ]
    return Taxonomy("onet", "test-1", ["major", "onet"], codes)
