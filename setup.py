"""Ship the top-level runtime folders (prompts/, configs/, labeling/, training/) inside the wheel.

They stay where the product layout puts them and are installed as ``autocoder._data.<name>``;
``autocoder.resources`` finds them without looking at the current working directory.
"""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).resolve().parent
RESOURCES = {
    f"autocoder._data.{name}": name
    for name in ("prompts", "configs", "labeling", "training")
    if (HERE / name).is_dir()
}

setup(
    packages=find_packages(include=["autocoder", "autocoder.*"]) + list(RESOURCES),
    package_dir=RESOURCES,
    package_data={
        "autocoder": ["pretrained/*/*"],  # the packaged model (`--model pretrained`)
        "autocoder.examples": ["*.csv"],
        "autocoder.taxonomy": ["onet_starter/*", "soc2018.csv"],  # O*NET starter, SOC 2018 groups
        **{pkg: ["*", "**/*"] for pkg in RESOURCES},
    },
)
