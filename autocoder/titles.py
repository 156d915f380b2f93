"""Posting-title normaliser: keep the occupation, drop what a job board adds around it.

Real vacancy titles carry employer names ("at Acme Corp", "- Amazon"), locations ("London, UK",
"New York, NY", "(Remote)"), work arrangement (remote, hybrid, on-site), shifts ("2nd shift"),
pay ("$25/hr", "up to 50K"), requisition numbers ("Req #12345", "JR-00123"), contract terms
(full-time, PRN, temp) and recruiting phrases ("URGENTLY HIRING", "$5,000 sign-on bonus").
``parse_title`` removes them by rules and returns the clean title with the seniority words
("Senior", "Jr.", "Lead", "II", "Entry Level", "Head of") as a separate feature.

How a title is read:
1. bracketed groups whose content is noise are dropped ("(Remote)", "(ID 4567)"; "(RN)" stays);
2. the title is split at separators (`` - ``, ``|``, ``•``, ``:``, ``!``) and the first segment
   that is not noise is the title: later segments are specialties, employers or places, and the
   occupation comes first in posting titles;
3. within that segment, trailing comma parts that are places or terms are dropped, and noise
   phrases are removed wherever they stand;
4. leading seniority words and trailing grade numerals are taken off into ``seniority``, except
   where they are part of the occupation ("Junior High School Teacher", "Principal Investigator",
   "Lead Abatement Worker"); "Intern"/"Trainee" after the occupation stay (they are its head
   noun: "Pharmacy Intern") but are reported as seniority too.

A title that would come out empty is returned unchanged (cleaned of whitespace only).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from autocoder.records import clean_text

US_STATES = {
    "AL": "Alabama", "AK": "Alaska", "AZ": "Arizona", "AR": "Arkansas", "CA": "California",
    "CO": "Colorado", "CT": "Connecticut", "DE": "Delaware", "FL": "Florida", "GA": "Georgia",
    "HI": "Hawaii", "ID": "Idaho", "IL": "Illinois", "IN": "Indiana", "IA": "Iowa",
    "KS": "Kansas", "KY": "Kentucky", "LA": "Louisiana", "ME": "Maine", "MD": "Maryland",
    "MA": "Massachusetts", "MI": "Michigan", "MN": "Minnesota", "MS": "Mississippi",
    "MO": "Missouri", "MT": "Montana", "NE": "Nebraska", "NV": "Nevada", "NH": "New Hampshire",
    "NJ": "New Jersey", "NM": "New Mexico", "NY": "New York", "NC": "North Carolina",
    "ND": "North Dakota", "OH": "Ohio", "OK": "Oklahoma", "OR": "Oregon", "PA": "Pennsylvania",
    "RI": "Rhode Island", "SC": "South Carolina", "SD": "South Dakota", "TN": "Tennessee",
    "TX": "Texas", "UT": "Utah", "VT": "Vermont", "VA": "Virginia", "WA": "Washington",
    "WV": "West Virginia", "WI": "Wisconsin", "WY": "Wyoming", "DC": "District of Columbia",
    "PR": "Puerto Rico",
}  # fmt: skip

COUNTRIES = (
    "UK", "U.K.", "United Kingdom", "England", "Scotland", "Wales", "Northern Ireland", "Ireland",
    "USA", "U.S.A.", "US", "U.S.", "United States", "America", "Canada", "Australia",
    "New Zealand", "Germany", "France", "Spain", "Italy", "Netherlands", "Belgium", "Switzerland",
    "Austria", "Sweden", "Norway", "Denmark", "Finland", "Poland", "Portugal", "India",
    "Singapore", "Philippines", "Mexico", "Brazil", "Japan", "China", "Hong Kong", "UAE",
    "Dubai", "South Africa", "EMEA", "APAC", "LATAM", "Europe", "EU", "North America",
)  # fmt: skip

#: Cities common on job boards whose names are not also ordinary title words.
CITIES = (
    "New York", "New York City", "NYC", "Los Angeles", "Chicago", "Houston", "Phoenix",
    "Philadelphia", "San Antonio", "San Diego", "Dallas", "Fort Worth", "San Jose", "Austin",
    "Jacksonville", "San Francisco", "Indianapolis", "Seattle", "Denver", "Boston", "Nashville",
    "Detroit", "Portland", "Las Vegas", "Memphis", "Louisville", "Baltimore", "Milwaukee",
    "Albuquerque", "Tucson", "Fresno", "Sacramento", "Atlanta", "Miami", "Orlando", "Tampa",
    "Raleigh", "Charlotte", "Minneapolis", "St. Louis", "Saint Louis", "Pittsburgh", "Cincinnati",
    "Cleveland", "Kansas City", "Omaha", "Oklahoma City", "Salt Lake City", "Richmond",
    "New Orleans", "Honolulu", "Anchorage", "Boise", "Spokane", "Des Moines", "Plano", "Irvine",
    "Scottsdale", "Tempe", "Newark", "Jersey City", "Brooklyn", "Manhattan", "Queens",
    "Bronx", "Silicon Valley", "Bay Area", "Palo Alto", "Mountain View", "Sunnyvale", "Redmond",
    "Bellevue", "Arlington", "Alexandria", "Bethesda", "Hartford", "Providence", "Buffalo",
    "Rochester", "Albany", "Toronto", "Vancouver", "Montreal", "Calgary", "Ottawa", "London",
    "Manchester", "Birmingham", "Leeds", "Glasgow", "Edinburgh", "Bristol", "Liverpool",
    "Cardiff", "Belfast", "Dublin", "Paris", "Berlin", "Munich", "Hamburg", "Frankfurt",
    "Amsterdam", "Rotterdam", "Brussels", "Madrid", "Barcelona", "Lisbon", "Milan", "Rome",
    "Zurich", "Geneva", "Vienna", "Stockholm", "Copenhagen", "Oslo", "Helsinki", "Warsaw",
    "Prague", "Sydney", "Melbourne", "Brisbane", "Perth", "Auckland", "Bangalore", "Bengaluru",
    "Mumbai", "Delhi", "Hyderabad", "Chennai", "Pune", "Manila", "Tokyo",
)  # fmt: skip

_PLACE_NAMES = sorted(
    {*COUNTRIES, *CITIES, *US_STATES.values(), "Remote US", "Nationwide"}, key=len, reverse=True
)
_PLACE = "(?:" + "|".join(re.escape(p) for p in _PLACE_NAMES) + ")"
_STATE = "(?:" + "|".join(US_STATES) + ")"
_PROVINCE = "(?:ON|BC|QC|AB|MB|NS|NB|SK|NL|PE|NSW|VIC|QLD)"
_CAP = r"[A-Z][\w.'&-]*"
_CITY = rf"{_CAP}(?:\s+{_CAP}){{0,3}}"
_MONEY = r"(?:[$£€]\s?\d[\d,]*(?:\.\d+)?\s?[kK]?\+?|\b\d[\d,]*(?:\.\d+)?\s?[kK]\b\+?)"
_RATE = r"(?:\s*(?:/|per|an|a)\s*(?:hour|hr|h|year|yr|annum|week|wk|month|mo|day|shift|visit)\b)"

_I = re.IGNORECASE

#: Noise removed wherever it stands (case-insensitive unless the pattern says otherwise).
INLINE_NOISE: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (name, re.compile(pattern, flags))
    for name, pattern, flags in (
        ("pay", rf"(?:\b(?:up to|starting at|starts at|from|earn|make|paying|pay(?: rate)?:?)\s*)?{_MONEY}(?:\s*(?:-|–|to)\s*{_MONEY})?{_RATE}?(?:\s*(?:plus|\+)\s*(?:benefits|tips|commission))?", _I),
        ("pay", rf"\b(?:up to|starting at)\s+\d[\d,.]*{_RATE}", _I),
        ("pay", r"\b\d+(?:\.\d+)?\s*(?:/|per|an)\s*(?:hour|hr)\b", _I),
        ("pay", r"\b(?:weekly|daily|same[- ]day|instant|competitive|great|top|excellent|high|increased|premium)\s+(?:pay|salary|wages?|rates?)\b", _I),
        ("pay", r"\b(?:salary\s+(?:negotiable|\+\s*benefits)|\bDOE\b|\bDOQ\b|\bOTE\b)", 0),
        ("bonus", r"(?:\b(?:with|w/|plus|\+|and)\s+)?(?:(?:[$£€]\s?)?\d[\d,]*\s?[kK]?\s+)?\b(?:sign[- ]?on|signing|hiring|retention|relocation|referral|starting)\s+bonus(?:es)?(?:\s+(?:available|included|offered|eligible))?", _I),
        ("bonus", r"\b(?:relocation(?:\s+(?:assistance|available|package|provided))|(?:great|full|excellent|amazing|comprehensive)\s+benefits|benefits\s+(?:available|included|from day one)|401\(?k\)?|bonus(?:\s+eligible)?(?=\s*$))\b", _I),
        ("urgent", r"\b(?:urgent(?:ly)?\s+(?:hiring|need(?:ed)?|requirement|opening)|urgent(?!\s+care)|(?:now|actively|immediately)\s+hiring|hiring\s+(?:now|immediately|urgently|asap|today|event)|immediate\s+(?:start|hire|opening|openings|need|interviews?)|start\s+(?:asap|immediately|today)|asap|apply\s+(?:now|today|here)|multiple\s+(?:openings|positions|vacancies)|(?:walk[- ]?in|same[- ]day|on[- ]the[- ]spot)\s+interviews?|no\s+experience(?:\s+(?:required|necessary|needed))?|will\s+train|paid\s+training|new\s+grads?(?:\s+welcome)?|home\s+(?:daily|weekly|every\s+weekend))\b", _I),
        ("urgent", r"^\s*(?:we(?:'re|\s+are)\s+)?hiring\b:?\s*", _I),
        ("requisition", r"(?:\b(?:req(?:uisition)?|job|position|posting|vacancy|ref(?:erence)?)\b\.?\s*(?:#|no\.?|number|id|code)?\s*[:#]?\s*[A-Z]{0,4}[-_]?\d[\w-]*|\bID\s*[:#]?\s*\d[\w-]*|#\s?\d[\w-]*)", _I),
        ("requisition", r"\b(?:[A-Z]{1,4}[-_]\d{3,}[\w-]*|[A-Z]{1,4}\d{5,}|[A-Z]{2,4}\d{4,}|(?i:req)\d{3,}|\d{5,})\b", 0),
        ("contract", r"\b(?:full|part)[- ]?time\b|\bPRN\b|\bper[- ]diem\b|\b(?:temp(?:orary)?|contract)[- ]to[- ](?:hire|perm(?:anent)?)\b|\b(?:fixed|short|long)[- ]term(?:\s+contract)?\b(?!\s+care)|\b\d+[- ]?(?:weeks?|wks?|months?|mos?)(?:\s+(?:contract|assignment))?\b|\b(?:permanent|perm)\b(?!\s+(?:mold|press|wave|make))(?:\s+(?:position|role|placement))?|\bcontract\s+(?:position|role|assignment|opportunity|job)\b|\b1099\b|\bW-?2\b", _I),
        ("contract", r"^\s*(?:seasonal|temporary|temp)\s+(?!help\b|agency\b|services\b)(?=\w)", _I),
        ("shift", r"\b(?:day|night|evening|overnight|graveyard|swing|weekend|rotating|split|early|late|morning|afternoon|1st|2nd|3rd|4th|first|second|third|fourth|flex(?:ible)?)\s+shifts?\b|\b\d{1,2}[- ]?(?:hr|hour)\s+shifts?\b|\b\dx\d{1,2}s?\b|\b\d{1,2}(?::\d\d)?\s?[ap]m?\s?-\s?\d{1,2}(?::\d\d)?\s?[ap]m?\b|\bmon(?:day)?\s?-\s?fri(?:day)?\b|\bM-F\b|\bweekend\s+availability\b|\bnights?\s+(?:and|&)\s+weekends?\b", _I),
        ("remote", r"\b(?:work\s+(?:from|at)\s+home|wfh|telecommut\w*|(?:fully|100%|partially|partly)\s+remote|remote[- ]first|remote[- ](?:position|role|opportunity|job|work|option|eligible|ok|possible|friendly)|(?:remote|hybrid)\s+(?:or|/)\s+(?:hybrid|remote|on[- ]?site|in[- ]office)|hybrid\s+(?:remote|work|schedule|role|position)|on[- ]?site\s+(?:position|role|only)|in[- ]office)\b", _I),
        ("remote", r"^\s*remote\s+(?!sensing|broadcast|operations?|operators?|pilots?|monitoring|vehicles?|systems?|control|technologist|camera)(?=\w)", _I),
        ("remote", r"\s(?:remote|hybrid|on[- ]?site|virtual)$", _I),
        ("shift", r"\s(?:nights|weekends|evenings|overnights)$", _I),
        ("contract", r"\s(?:contract|temp|temporary|seasonal|permanent|freelance)$", _I),
        ("gender", r"\(?\b[mwfdx]\s?/\s?[mwfdx](?:\s?/\s?[mwfdx])?\b\)?|\ball\s+genders\b", _I),
        ("location", rf"\s+(?:in|near)\s+(?:{_PLACE}|{_CITY},\s*(?:{_STATE}|{_PLACE}))$", 0),
        ("location", rf"\s+{_PLACE}$", 0),
        ("location", rf"\s+{_CAP},\s*(?:{_STATE}|{_PROVINCE}|{_PLACE})(?:\s+\d{{5}})?$", 0),
        ("employer", r"\s+(?:at|@)\s+(?!(?i:law|risk|arms)\b)[A-Z0-9][\w.&'-]*(?:\s+(?:[A-Z0-9&][\w.&'-]*|of|and|the|de))*$", 0),
        ("employer", r"\s*\b[A-Z][\w&.'-]*(?:\s+[A-Z][\w&.'-]*){0,3},?\s+(?:Inc\.?|LLC|L\.L\.C\.|Ltd\.?|Corp\.?|Corporation|PLC|plc|GmbH|LLP|Pty|S\.A\.)(?=\s|$)", 0),
    )
)  # fmt: skip

#: The inline noise that may be removed before the title is split at separators.
_UNANCHORED = tuple(
    (name, pattern)
    for name, pattern in INLINE_NOISE
    if name not in ("employer", "location") and not pattern.pattern.startswith("^")
)

#: Noise only when it is a whole segment, bracket or comma part ("Nights", "Dallas, TX").
SEGMENT_NOISE = re.compile(
    rf"^(?:(?-i:{_PLACE}|{_STATE}|{_PROVINCE}|(?:{_PLACE}|{_CAP}),\s*(?:{_STATE}|{_PROVINCE}|{_PLACE})(?:\s+\d{{5}})?|{_PLACE}\s+{_STATE})"
    r"|remote|hybrid|on[- ]?site|onsite|in[- ]office|virtual|anywhere|nationwide|travel"
    r"|(?:multiple|various|several)\s+locations|(?:nights?|days|evenings?|weekends?|overnights?)"
    r"(?:\s+only)?|contract|contractor|temp|temporary|seasonal|permanent|perm|freelance|new"
    r"|(?-i:(?:[A-Z][\w&.'-]*\s+){0,3}(?:Inc\.?|LLC|Ltd\.?|Corp\.?|Corporation|PLC|GmbH|LLP)))$",
    _I,
)

_SENIORITY = {
    "senior": "senior", "sr": "senior", "snr": "senior", "junior": "junior", "jr": "junior",
    "jnr": "junior", "lead": "lead", "principal": "principal", "entry level": "entry",
    "entry-level": "entry", "mid level": "mid", "mid-level": "mid", "intern": "intern",
    "trainee": "trainee", "head of": "head",
}  # fmt: skip
_LEADING = re.compile(
    r"^(senior|sr\.?|snr|junior|jr\.?|jnr|lead|principal|entry[- ]level|mid[- ]level|intern|"
    r"trainee|head of)\s+"
    r"(?!(?:high|college|school|center|centre|living|care|citizens?|abatement|paint|burner|"
    r"poisoning|smelter|investigator|oxide|furnace|refiner|miner|mill|of)\b)",
    _I,
)
_TRAILING = re.compile(
    r"[\s,/-]+(?:(senior|sr\.?|junior|jr\.?|lead|entry[- ]level)|(?:level|lvl|grade\s+level|tier)"
    r"\s*([1-4]|I{1,3}|IV)|(I{1,3}|IV)|(intern|trainee))$",
    _I,
)
_ROMAN = {"1": "I", "2": "II", "3": "III", "4": "IV"}
_SEPARATORS = re.compile(r"\s+[-–—|•·~]+\s+|\s*[|•·]\s*|\s*[–—]\s*|:\s+|!+\s*|\s*//\s*")
_BRACKETS = re.compile(r"[(\[{]([^()\[\]{}]*)[)\]}]")
_WORD = re.compile(r"[A-Za-z]{2,}|[A-Za-z]\d|\d[A-Za-z]")
_FILLER = re.compile(r"^(?:and|&|with|or|plus|the|a|an|w/|-|\+|/|,|\s)*$", _I)


@dataclass(frozen=True)
class ParsedTitle:
    """A posting title split into the occupation and what surrounded it.

    ``title`` is the occupation text to code; ``seniority`` the canonical seniority levels found
    (``senior``, ``junior``, ``lead``, ``principal``, ``entry``, ``mid``, ``intern``,
    ``trainee``, ``head``, grade numerals ``I``–``IV``), in reading order; ``removed`` the noise
    taken out, as ``kind:text`` (kinds: pay, bonus, urgent, requisition, contract, shift, remote,
    gender, employer, location, segment, seniority).
    """

    title: str
    seniority: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def _remove(pattern: re.Pattern[str], name: str, text: str, removed: list[str]) -> str:
    """``text`` without the matches of ``pattern``, each recorded as ``name:match``."""

    def record(match: re.Match[str]) -> str:
        if match.group(0).strip():
            removed.append(f"{name}:{match.group(0).strip()}")
        return " "

    return pattern.sub(record, text)


def _strip_unanchored(text: str, removed: list[str]) -> str:
    """The noise that is noise wherever it stands (pay, ids, shifts...), before any split."""
    for name, pattern in _UNANCHORED:
        text = _remove(pattern, name, text, removed)
    return _tidy(text)


def _uncap(text: str) -> str:
    """An all-capitals title in title case; words of one or two letters (RN, TX) stay."""
    if not text.isupper():
        return text
    small = {"AT", "OF", "IN", "AND", "THE", "FOR", "TO", "A", "AN", "ON"}
    return " ".join(
        w.lower() if w in small else (w.title() if len(re.sub(r"\W", "", w)) > 2 else w)
        for w in text.split()
    )


def _strip_inline(text: str, removed: list[str]) -> str:
    """Remove every inline noise pattern, again while one of them still finds something."""
    before = None
    while text != before:
        before = text
        text = _strip_once(text, removed)
    return _tidy(text)


def _strip_once(text: str, removed: list[str]) -> str:
    for name, pattern in INLINE_NOISE:
        text = " " + " ".join(_remove(pattern, name, text, removed).split())
    return text


def _tidy(text: str) -> str:
    text = re.sub(r"\s*,\s*(?:,\s*)+", ", ", text)
    text = re.sub(r"\(\s*\)|\[\s*\]|\{\s*\}", " ", text)
    text = re.sub(r"([(\[{])\s+", r"\1", re.sub(r"\s+([)\]}])", r"\1", text))
    text = " ".join(text.split())
    text = re.sub(r"(?:\s+(?:of|at|in|for|and|the|with|&))+$", "", text.strip(" -–—|•·,;:/&+~*"))
    return text.strip(" -–—|•·,;:/&+~*")


def _seniority_only(text: str) -> list[str] | None:
    """The levels of a text made only of seniority words ("Sr.", "II", "Entry Level")."""
    words = text.strip().rstrip(".")
    key = words.lower().rstrip(".")
    if key in _SENIORITY:
        return [_SENIORITY[key]]
    if re.fullmatch(r"I{1,3}|IV", words):
        return [words]
    level = re.fullmatch(r"(?:level|lvl|tier)\s*([1-4]|I{1,3}|IV)", words, _I)
    return [_ROMAN.get(level.group(1), level.group(1).upper())] if level else None


def _is_noise(text: str, levels: list[str], *, bracket: bool = False) -> bool:
    """Whether a segment or bracket holds no occupation words (its levels go to ``levels``)."""
    text = text.strip()
    if not text:
        return True
    found = _seniority_only(text)
    if found:
        levels.extend(found)
        return True
    if bracket and re.fullmatch(r"[A-Z]{1,3}", text):  # "(PA)", "(CO)", "(R)": acronyms
        return False
    if SEGMENT_NOISE.match(text):
        return True
    rest = _strip_inline(f" {text}", [])
    rest = SEGMENT_NOISE.sub("", rest).strip()
    return not _WORD.search(rest) or bool(_FILLER.match(rest))


def _drop_brackets(text: str, removed: list[str], levels: list[str]) -> str:
    def repl(match: re.Match[str]) -> str:
        if _is_noise(match.group(1), levels, bracket=True):
            removed.append(f"segment:{match.group(0)}")
            return " "
        return match.group(0)

    return _BRACKETS.sub(repl, text)


def _head_segment(text: str, removed: list[str], levels: list[str]) -> str:
    """The first segment between separators that is not noise; the rest is recorded."""
    masked = _BRACKETS.sub(lambda m: m.group(0).replace("-", "\x00").replace(":", "\x01"), text)
    segments = [
        s.replace("\x00", "-").replace("\x01", ":")
        for s in _SEPARATORS.split(masked)
        if s and s.strip()
    ]
    head = next((s for s in segments if not _is_noise(s, levels)), None)
    if head is None:  # every segment looks like noise: the occupation is still the first
        head = segments[0] if segments else ""
    removed.extend(f"segment:{s.strip()}" for s in segments if s is not head)
    return head


def _drop_comma_tail(text: str, removed: list[str], levels: list[str]) -> str:
    """Drop trailing comma parts that are places, terms or levels ("Nurse, Dallas, TX");
    the first part always stays (O*NET writes "Teacher, Elementary School")."""
    parts = [p.strip() for p in text.split(",")]
    while len(parts) > 1 and _is_noise(parts[-1], levels):
        region = re.fullmatch(rf"{_STATE}|{_PROVINCE}|{_PLACE}", parts[-1]) is not None
        removed.append(f"segment:{parts.pop()}")
        if region and len(parts) > 1 and re.fullmatch(rf"{_CAP}(?:\s+{_CAP}){{0,2}}", parts[-1]):
            removed.append(f"location:{parts.pop()}")  # the city before "TX" or "UK"
    return ", ".join(parts)


def _take_seniority(text: str, levels: list[str]) -> str:
    """Take leading seniority words and trailing grades off ``text`` into ``levels``."""
    lead: list[str] = []
    while (m := _LEADING.match(text)) and len(text) > m.end():
        word = m.group(1).lower().rstrip(".")
        lead.append(_SENIORITY.get(word, _SENIORITY.get(word.replace("-", " "), word)))
        text = text[m.end() :]
        if word == "head of":
            text = f"{text} Manager"
    trail: list[str] = []
    while (m := _TRAILING.search(text)) and m.start() > 0:
        word, grade, roman, keep = m.groups()
        if keep:
            trail.insert(0, keep.lower())
            break
        if word and word.lower() == "lead" and not re.search(r"[,/-]", m.group(0)):
            break  # "Team Lead" is the occupation; "Cook, Lead" a level
        if word:
            key = word.lower().rstrip(".").replace("-", " ")
            trail.insert(0, _SENIORITY.get(key, key))
        else:
            value = grade or roman
            trail.insert(0, _ROMAN.get(value, value.upper()))
        text = text[: m.start()]
    levels.extend(lead + trail)
    return text


def parse_title(raw: object) -> ParsedTitle:
    """Split a posting title into the occupation title, its seniority and the noise around it."""
    original = clean_text(raw)
    removed: list[str] = []
    levels: list[str] = []
    text = re.sub(r"\s*[–—]\s*", " - ", _uncap(original))
    text = _drop_brackets(text, removed, levels)
    text = _strip_unanchored(text, removed)
    text = _head_segment(text, removed, levels)
    text = _strip_inline(f" {text}", removed)
    text = _drop_comma_tail(text, removed, levels)
    text = _strip_inline(f" {text}", removed)
    text = _tidy(_take_seniority(text, levels))
    if not _WORD.search(text):
        return ParsedTitle(original, tuple(levels), tuple(removed))
    return ParsedTitle(text, tuple(dict.fromkeys(levels)), tuple(removed))


def clean_title(raw: object) -> str:
    """The occupation part of a posting title (``parse_title(raw).title``)."""
    return parse_title(raw).title
