"""The posting-title normaliser on titles written the way job boards write them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from autocoder.coding.batch import code_file
from autocoder.coding.loaded import LoadedCoder
from autocoder.config import CoderConfig
from autocoder.records import as_records
from autocoder.titles import ParsedTitle, clean_title, parse_title
from tests.fakes import KeywordPredictor

# (raw posting title, expected clean title, expected seniority levels)
POSTING_TITLES = [
    (
        "Registered Nurse (RN) - ICU - Night Shift - $5,000 Sign-On Bonus",
        "Registered Nurse (RN)",
        (),
    ),
    ("Software Engineer at Acme Corp", "Software Engineer", ()),
    ("Senior Accountant - London, UK", "Accountant", ("senior",)),
    ("Warehouse Associate (Remote)", "Warehouse Associate", ()),
    ("Customer Service Representative - Work From Home", "Customer Service Representative", ()),
    ("Registered Nurse - New York, NY", "Registered Nurse", ()),
    ("Cashier - Part Time - Walmart", "Cashier", ()),
    ("Line Cook $18/hr", "Line Cook", ()),
    ("Forklift Operator - 2nd Shift", "Forklift Operator", ()),
    ("Data Analyst Req #12345", "Data Analyst", ()),
    ("Project Manager JR-00123", "Project Manager", ()),
    ("Sales Associate (ID 4567)", "Sales Associate", ()),
    ("URGENTLY HIRING: Delivery Driver", "Delivery Driver", ()),
    ("Diesel Mechanic - Up to $50K", "Diesel Mechanic", ()),
    ("Diesel Mechanic up to 50K", "Diesel Mechanic", ()),
    ("Medical Assistant PRN", "Medical Assistant", ()),
    ("Barista - Amazon", "Barista", ()),
    ("Electrician | Full-Time | Houston, TX", "Electrician", ()),
    ("Nurse Practitioner – Hybrid", "Nurse Practitioner", ()),
    ("Receptionist (Temp-to-Hire)", "Receptionist", ()),
    ("Physical Therapist - Travel Contract - 13 Weeks", "Physical Therapist", ()),
    ("Sr. Financial Analyst II", "Financial Analyst", ("senior", "II")),
    ("Jr. Web Developer (Remote, US)", "Web Developer", ("junior",)),
    ("Lead Line Cook - Evenings", "Line Cook", ("lead",)),
    ("Principal Software Engineer, Payments", "Software Engineer, Payments", ("principal",)),
    ("Entry Level Sales Representative - Paid Training", "Sales Representative", ("entry",)),
    ("Head of Marketing (m/f/d)", "Marketing Manager", ("head",)),
    ("Accounts Payable Clerk Level 2", "Accounts Payable Clerk", ("II",)),
    ("CDL-A Truck Driver - Home Daily - $1,500/week", "CDL-A Truck Driver", ()),
    ("Dental Hygienist $45-$55/hr + $2,000 Signing Bonus", "Dental Hygienist", ()),
    ("Night Shift Security Officer - Dallas, TX 75201", "Security Officer", ()),
    ("Seasonal Warehouse Associate - Immediate Start", "Warehouse Associate", ()),
    ("Registered Nurse, Med/Surg, Chicago, IL", "Registered Nurse, Med/Surg", ()),
    ("Maintenance Technician 3rd Shift (7p-7a) Req 2024-1187", "Maintenance Technician", ()),
    ("Administrative Assistant - Permanent - Manchester", "Administrative Assistant", ()),
    ("Hiring Now! Dishwasher", "Dishwasher", ()),
    ("Pharmacy Technician - Walgreens - Part-Time Evenings", "Pharmacy Technician", ()),
    ("Store Manager at Dollar General in Tampa, FL", "Store Manager", ()),
    ("Remote Customer Success Manager (Fully Remote)", "Customer Success Manager", ()),
    ("Welder / Fabricator - Contract - $28-32/hr DOE", "Welder / Fabricator", ()),
    ("Mechanical Engineering Intern - Summer 2025", "Mechanical Engineering Intern", ("intern",)),
    ("Teacher - Special Education (Long-Term Sub) - Req. JR-45012", "Teacher", ()),
    ("Bookkeeper, Part Time, Remote", "Bookkeeper", ()),
    ("HVAC Technician - Up to $40/hr - Sign-On Bonus!", "HVAC Technician", ()),
    ("Staff Accountant (Hybrid) - Acme Holdings LLC", "Staff Accountant", ()),
]

# Real O*NET titles that look like noise but are the occupation: they must come back unchanged.
OCCUPATION_TITLES = [
    "Remote Sensing Scientist",
    "Remote Operations Producer",
    "Hybrid Technologist",
    "Contract Sourcing Specialist",
    "Hotel Night Auditor",
    "Restaurant Shift Leader",
    "Shift Manager",
    "Urgent Care PA (Urgent Care Physician Assistant)",
    "Travel Phlebotomist",
    "Junior High School Principal",
    "Principal Investigator",
    "Vice Principal",
    "Lead Abatement Worker",
    "Attorney at Law",
    "Teacher, Elementary School",
    "3D Artist (Three-Dimensional Artist)",
    "911 Emergency Dispatcher",
    "Chief Counsel",
    "Data Entry Clerk",
    "Heating, Ventilation, Air Conditioning, and Refrigeration Technician",
    "Senior Center Director",
]


@pytest.mark.parametrize(("raw", "title", "seniority"), POSTING_TITLES)
def test_posting_titles_keep_only_the_occupation(
    raw: str, title: str, seniority: tuple[str, ...]
) -> None:
    parsed = parse_title(raw)
    assert parsed.title == title, parsed
    assert parsed.seniority == seniority, parsed


@pytest.mark.parametrize("title", OCCUPATION_TITLES)
def test_occupation_titles_are_left_alone(title: str) -> None:
    parsed = parse_title(title)
    assert parsed.title == title, parsed
    assert parsed.seniority == ()


def test_result_records_what_was_removed() -> None:
    parsed = parse_title("Line Cook - Night Shift - $18/hr")
    assert isinstance(parsed, ParsedTitle)
    assert parsed.title == "Line Cook"
    kinds = {item.split(":", 1)[0] for item in parsed.removed}
    assert {"shift", "pay"} <= kinds
    assert "pay:$18/hr" in parsed.removed


def test_title_that_is_all_noise_comes_back_unchanged() -> None:
    assert clean_title("  Remote  ") == "Remote"
    assert clean_title("Senior") == "Senior"
    assert clean_title("") == ""
    assert clean_title(None) == ""


def test_clean_title_is_idempotent() -> None:
    for raw, _title, _levels in POSTING_TITLES:
        once = clean_title(raw)
        assert clean_title(once) == once or parse_title(once).seniority, raw


class _Recording(KeywordPredictor):
    """A keyword predictor that keeps the titles it was asked to code."""

    def __init__(self, keywords: dict[str, str]) -> None:
        super().__init__(keywords)
        self.titles: list[str] = []

    def predict_proba(self, X: object) -> np.ndarray:
        self.titles += [r.title for r in as_records(X)]
        return super().predict_proba(X)


def _code(tmp_path: Path, normalize: bool) -> tuple[list[str], str]:
    inp = tmp_path / "in.csv"
    if not inp.exists():
        pd.DataFrame(
            {
                "id": ["a", "b"],
                "title": ["Sr. Registered Nurse - Dallas, TX - $5,000 Sign-On Bonus", "Welder"],
            }
        ).to_csv(inp, index=False)
    predictor = _Recording({"nurse": "29-1141.00", "welder": "51-4121.00"})
    summary = code_file(
        inp,
        tmp_path / f"out-{normalize}.csv",
        coder=LoadedCoder.from_predictor(predictor),
        runs_dir=tmp_path / "runs",
        options=CoderConfig(normalize_titles=normalize),
        show_progress=False,
    )
    return predictor.titles, summary.job


def test_coder_codes_the_normalised_title_and_keys_the_job_on_the_setting(
    tmp_path: Path,
) -> None:
    assert CoderConfig().normalize_titles is True
    on_titles, on_job = _code(tmp_path, True)
    off_titles, off_job = _code(tmp_path, False)
    assert on_titles == ["Registered Nurse", "Welder"]
    assert off_titles[0].startswith("Sr. Registered Nurse - Dallas")
    assert on_job != off_job


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_onet_titles_are_almost_never_changed(shared_data_dir: Path) -> None:
    """The O*NET 29.2 alternate titles are occupations: at most 0.5 % may change at all."""
    table = pd.read_csv(shared_data_dir / "onet_29.2" / "Alternate Titles.txt", sep="\t")
    titles = sorted(set(table["Alternate Title"].dropna()))
    changed = [t for t in titles if clean_title(t) != t]
    assert len(titles) > 40_000
    assert len(changed) / len(titles) < 0.005, changed[:20]
