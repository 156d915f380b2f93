"""O*NET titles as training text for the ESCO classifier, through the ESCO <-> O*NET crosswalk.

The reverse direction of ``sources.esco_titles``: every title of an O*NET occupation (its
official title and reported titles, optionally the alternate titles, as ``taxonomy.onet.import_onet`` reads them)
becomes a training row for each ESCO occupation the crosswalk links it to. The crosswalk's
match type says how the O*NET occupation relates to the ESCO one, and it is read here from the
O*NET side:

* ``exactMatch``: the same occupation;
* ``narrowMatch``: the O*NET occupation is narrower (Geothermal Production Managers -> power
  plant manager), so each of its titles is a title of the ESCO occupation too;
* ``closeMatch``: mostly the same;
* ``broadMatch``: the O*NET occupation is broader (Chief Executives -> airport chief
  executive); most of its titles are not the ESCO occupation's, so it is not used by default.

``match_weights`` gives the weight per type; a title whose O*NET occupation links to ``n``
ESCO occupations carries ``weight / n`` for each (the weights are sample weights). Links to
URIs that are not occupations of the ESCO taxonomy (the crosswalk is for ESCO v1.1.0) are
dropped and counted in the log.

A recipe names it as the extra source ``onet_crosswalk`` (``ONET_CROSSWALK_FILES`` are the
files it looks for under the recipe's sources folder); ``classify.data.source_rows`` turns the
table into training rows whose ``weight`` is the sample weight.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import pandas as pd

from autocoder.classify.sources import (
    CROSSWALK_FILE,
    SOURCE_COLUMNS,
    finish_source_rows,
    read_crosswalk,
)
from autocoder.taxonomy.model import Taxonomy
from autocoder.taxonomy.onet import OCCUPATION_DATA, import_onet

log = logging.getLogger(__name__)

ONET_SOURCE = "onet_crosswalk"
#: Weight of an O*NET title per crosswalk match type (O*NET -> ESCO); others are not used.
ONET_TO_ESCO_WEIGHTS: Mapping[str, float] = {
    "exactMatch": 1.0,
    "narrowMatch": 0.8,
    "closeMatch": 0.6,
}
#: By default the official and reported titles (7.6k texts; what README figures used); add
#: ``alt_title`` for all ~57k alternate titles (slower to embed, not measured).
ONET_TITLE_KINDS = ("title", "reported_title")
ALL_TITLE_KINDS = ("title", "alt_title", "reported_title")
#: The files the source needs: the crosswalk, and the O*NET text release (its occupations file).
ONET_CROSSWALK_FILES = (CROSSWALK_FILE, OCCUPATION_DATA)


def esco_links(
    crosswalk_folder: str | Path,
    uri_to_code: Mapping[str, str],
    *,
    match_weights: Mapping[str, float] = ONET_TO_ESCO_WEIGHTS,
) -> pd.DataFrame:
    """The crosswalk links used: ``onet_code, uri, code, match, weight`` (weight split over
    the ESCO occupations an O*NET occupation links to; the best match type per pair kept)."""
    links = read_crosswalk(Path(crosswalk_folder) / CROSSWALK_FILE)
    links = links[links["match"].isin(set(match_weights))].rename(columns={"esco_uri": "uri"})
    known = links["uri"].isin(set(uri_to_code))
    if unknown := int((~known).sum()):
        log.info("crosswalk: %d links name URIs that are not ESCO occupations here", unknown)
    links = links[known].assign(
        code=lambda t: t["uri"].map(dict(uri_to_code)),
        weight=lambda t: t["match"].map(dict(match_weights)).astype(float),
    )
    links = links.sort_values("weight", ascending=False, kind="stable")
    links = links.drop_duplicates(["onet_code", "uri"])
    fan_out = links.groupby("onet_code")["uri"].transform("count")
    links = links.assign(weight=links["weight"] / fan_out)
    return links[["onet_code", "uri", "code", "match", "weight"]].reset_index(drop=True)


def onet_titles(onet: Taxonomy, kinds: Sequence[str] = ONET_TITLE_KINDS) -> pd.DataFrame:
    """Every title of every O*NET occupation: ``onet_code, text``."""
    rows = [
        (code.code, text)
        for code in onet.leaves()
        for _, text in onet.texts(code.code, tuple(kinds))
    ]
    return pd.DataFrame(rows, columns=["onet_code", "text"])


def onet_titles_for_esco(
    onet_release: str | Path,
    crosswalk_folder: str | Path,
    esco: Taxonomy,
    *,
    kinds: Sequence[str] = ONET_TITLE_KINDS,
    holdout: Collection[str] = (),
    match_weights: Mapping[str, float] = ONET_TO_ESCO_WEIGHTS,
) -> pd.DataFrame:
    """O*NET titles as ESCO training rows: ``text, code, source, weight, uri`` (``code`` the
    ESCO occupation code, ``uri`` its concept URI), one row per distinct text and code."""
    uri_to_code = {c.uri: c.code for c in esco.leaves() if c.uri}
    links = esco_links(crosswalk_folder, uri_to_code, match_weights=match_weights)
    titles = onet_titles(import_onet(onet_release), kinds)
    rows = titles.merge(links, on="onet_code")[["text", "code", "weight"]]
    table = finish_source_rows(rows, ONET_SOURCE, holdout)
    code_to_uri = {code: uri for uri, code in uri_to_code.items()}
    return table.assign(uri=table["code"].map(code_to_uri))[[*SOURCE_COLUMNS, "uri"]]
