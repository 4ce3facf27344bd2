"""The role of every column (identifier, dimension, time, calendar, clock, measure...), and why.

Roles are decided from the column's name *and* its values; an uploader may override them. The
rule when in doubt: a measure is not additive (a missing total costs little, a nonsense total
costs the reader's trust).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from analysis_svc.engine.column_profile import ColumnProfile, name_tokens
from datapilot_runtime.report.calendar_names import MONTH_NAMES, WEEKDAY_NAMES
from datapilot_runtime.report.insights import MEASURE_ROLES, OVERRIDE_ROLES, ColumnRole, Role

#: Calendar parts: the name tokens that announce them and the integer range they must fit.
CALENDAR_PARTS: dict[str, tuple[frozenset[str], float, float]] = {
    "year": (frozenset({"year", "yyyy", "fy"}), 1000, 2200),
    "quarter": (frozenset({"quarter"}), 1, 4),
    "month": (frozenset({"month", "mnth"}), 1, 12),
    "week": (frozenset({"week", "weeknum", "isoweek"}), 0, 53),
    "weekday": (frozenset({"weekday", "dow", "wday", "dayofweek"}), 0, 7),
    "day": (frozenset({"day", "dom", "dayofmonth"}), 1, 31),
    "hour": (frozenset({"hour"}), 0, 24),
    "minute": (frozenset({"minute"}), 0, 59),
}
# Abbreviations are too ambiguous inside longer names ("temp_min"): only as the whole name.
_CALENDAR_ABBREVIATIONS = {
    "yr": "year",
    "qtr": "quarter",
    "q": "quarter",
    "mon": "month",
    "mo": "month",
    "mm": "month",
    "wk": "week",
    "dd": "day",
    "hr": "hour",
    "hh": "hour",
    "min": "minute",
    "mins": "minute",
}
#: Two-digit years ("model_year" 70-82) are calendar parts too, but no time axis.
_SHORT_YEAR = (0, 99)
_WEEKDAY_ALIASES = {"thur": 3, "thurs": 3, "tues": 1, "wednes": 2}
_CLOCK_TOKENS = frozenset({"time", "hhmm", "clock", "dep", "arr", "departure", "arrival"})
_MAX_CLOCK_DISTINCT = 24 * 3600  # every second of a day
_MAX_NAME_DISTINCT = 40  # month / weekday / quarter spellings, with case variants
_CLOCK_TEXT = re.compile(r"^\s*([01]?\d|2[0-4]):[0-5]\d(:[0-5]\d)?\s*$")
_QUARTER_TEXT = re.compile(r"^\s*q([1-4])\s*$", re.IGNORECASE)

# Name words, checked in this order: non-additive first (a "sales_rate" is a rate), then stock.
NON_ADDITIVE_WORDS = frozenset(
    {"rate", "rates", "ratio", "share", "pct", "percent", "percentage", "prop", "proportion"}
    | {"price", "prices", "avg", "average", "mean", "median", "med", "per", "capita", "pc"}
    | {"score", "rating", "grade", "age", "temp", "temperature", "lat", "latitude", "lon"}
    | {"lng", "long", "longitude", "margin", "yield", "density", "speed", "duration", "delay"}
    # physical sizes of one thing: a penguin's "bill_length_mm" is no restaurant bill
    | {"length", "width", "height", "depth", "diameter", "radius", "thickness", "mm", "cm"}
    | {"humidity", "humid", "pressure", "visibility", "visib", "dewp", "dewpoint", "bmi"}
    | {"index", "idx", "ppi", "cpi", "gdppc", "expectancy", "expect", "probability", "prob"}
    | {"elasticity", "growth", "change", "infl", "inflation", "unemp", "unemployment", "mpg"}
    | {"open", "close", "high", "low", "adj"}
)
STOCK_WORDS = frozenset(
    {"population", "pop", "balance", "inventory", "stock", "level", "headcount", "employees"}
    | {"outstanding", "capacity", "backlog", "reserves", "holdings", "nonfarm", "employment"}
    | {"subscribers", "members", "assets", "liabilities", "equity", "debt"}
)
ADDITIVE_WORDS = frozenset(
    {"count", "counts", "amount", "amt", "qty", "quantity", "quantities", "sales", "revenue"}
    | {"revenues", "cost", "costs", "volume", "passengers", "units", "total", "sum", "spend"}
    | {"spending", "expense", "expenses", "profit", "profits", "income", "orders", "visits"}
    | {"clicks", "views", "sessions", "deaths", "cases", "births", "items", "tickets", "trips"}
    | {"sold", "bookings", "downloads", "installs", "impressions", "calls", "transactions"}
    | {"quantity", "kwh", "consumption", "precipitation", "rainfall", "distance", "miles"}
    | {"tax", "fee", "fees", "tip", "bill", "gross", "paid", "freq", "frequency", "n"}
    # flows over a period: what was made, sent, counted or happened in it
    | {"generation", "production", "output", "emissions", "exports", "imports", "shipments"}
    | {"deliveries", "donations", "claims", "incidents", "accidents", "injuries", "fatalities"}
    | {"crimes", "arrests", "admissions", "votes", "doses", "mwh", "gwh", "twh", "purchases"}
)
_COUNT_PREFIXES = ("n", "num", "nb", "no", "cnt")
# Integer columns that name an entity are codes, not quantities ("flight 1545", "store 12").
_CODE_WORDS = frozenset(
    {"flight", "fips", "station", "route", "account", "store", "dept", "branch", "zip"}
    | {"zipcode", "postcode", "area", "region", "district", "cluster", "group", "class"}
    | {"pclass", "cat", "category", "type", "kind", "segment", "label", "model", "version"}
    # sampling units of a study: a mean "stratum" or "subject" number means nothing
    | {"stratum", "strata", "block", "batch", "subject", "patient", "household", "pair", "plot"}
)
DIMENSION_MAX_INT_DISTINCT = 8
#: Coordinates: name words and the value range they must fit. A mean longitude per group or an
#: "outlier" latitude says nothing, and a compass direction is circular (350 and 10 are close).
_COORDINATES: tuple[tuple[frozenset[str], float, float, str], ...] = (
    (frozenset({"lat", "latitude"}), -90, 90, "a latitude"),
    (frozenset({"lon", "lng", "longitude"}), -180, 180, "a longitude"),
    (
        frozenset({"dir", "direction", "bearing", "heading", "azimuth", "winddir"}),
        0,
        360,
        "a compass direction in degrees (circular)",
    ),
)
# Names of row-number columns (pandas' "Unnamed: 0", "index", "row", "#"): only these may be
# taken for a row number from consecutive values; a series 0, 1, 2 ... named "views" is data.
_ROW_NUMBER_WORDS = frozenset({"unnamed", "index", "idx", "row", "rownum", "n", "no", "0", "1"})
_ROW_NUMBER_WORDS |= {"rownames", "rowname", "rows", "rowid", "obs", "x", ""}
# A time index 1, 2, 3 ... one per row ("t" beside Year and Month) counts periods, not a quantity.
_ROW_NUMBER_WORDS |= {"t", "time", "period", "step", "seq", "sequence"}
#: Names that say "row name" outright: unique values under them identify rows even with gaps
#: (R's rownames 19740001, 19740002 ... 19760001).
_ROW_NAME_WORDS = frozenset({"rownames", "rowname", "rowid", "rownum", "unnamed", "index", "idx"})
#: Decimal years (1949.083 for February 1949), as R's time series export them.
_DECIMAL_YEAR_WORDS = frozenset({"time", "date", "year", "yr", "period", "t", "decimal"})
_DECIMAL_YEAR_RANGE = (1000.0, 2200.0)
_DECIMAL_YEAR_STEPS = (1 / 12, 1 / 4, 1 / 2)
_MIN_DECIMAL_YEARS = 8
#: Integer codes 1..k whose every value repeats (chick 1..50, subject 1..30): a dimension.
_CODE_MAX_DISTINCT = 60
_CODE_MIN_REPEATS = 2


@dataclass
class Semantics:
    """Roles of all columns (by name), their calendar part where they have one, and warnings."""

    roles: dict[str, ColumnRole] = field(default_factory=dict)
    parts: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def role(self, name: str) -> Role:
        return self.roles[name].role

    def is_measure(self, name: str) -> bool:
        return self.roles[name].role in MEASURE_ROLES


def assign_roles(profiles: list[ColumnProfile], overrides: Mapping[str, str] | None) -> Semantics:
    """The role of every column; ``overrides`` (column -> role string) win over inference."""
    semantics = Semantics()
    wanted = dict(overrides or {})
    names = {profile.name for profile in profiles}
    for column in sorted(wanted):
        if column not in names:
            semantics.warnings.append(f"role override for '{column}': the file has no such column")
        elif wanted[column] not in OVERRIDE_ROLES:
            semantics.warnings.append(f"role override for '{column}': unknown role ignored")
    for profile in profiles:
        role, reason, part = infer_role(profile)
        chosen = wanted.get(profile.name)
        if chosen in OVERRIDE_ROLES and profile.name in names:
            overridden = _override(profile, str(chosen), role, part)
            semantics.roles[profile.name] = overridden[0]
            if overridden[1] is not None:
                semantics.parts[profile.name] = overridden[1]
            continue
        semantics.roles[profile.name] = ColumnRole(name=profile.name, role=role, reason=reason)
        if part is not None:
            semantics.parts[profile.name] = part
    return semantics


def _override(
    profile: ColumnProfile, chosen: str, inferred: Role, part: str | None
) -> tuple[ColumnRole, str | None]:
    if chosen == "measure":
        role = inferred if inferred in MEASURE_ROLES else measure_additivity(profile.name)[0]
    elif chosen == "time" and profile.kind != "datetime":
        role, part = Role.TIME, part or ("year" if profile.numbers is not None else None)
    else:
        role = Role(chosen)
    if role is Role.CALENDAR and part is None:
        part = _calendar_part_by_values(profile)
    if role is not Role.CALENDAR and chosen != "time":
        part = None
    return ColumnRole(
        name=profile.name, role=role, reason="set by the uploader", overridden=True
    ), part


def infer_role(profile: ColumnProfile) -> tuple[Role, str, str | None]:
    """(role, reason, calendar part or None) from the profile's type, name and values."""
    tokens = name_tokens(profile.name)
    kind = profile.kind
    if kind in ("empty", "constant"):
        return Role.IGNORE, f"{kind} column: nothing to analyse", None
    if kind == "datetime":
        return Role.TIME, "dates or timestamps", None
    if kind == "text":
        return Role.TEXT, "free text (long strings)", None
    if kind == "id":
        return (
            Role.IDENTIFIER,
            "unique or id-named values: identifies a row, never aggregated",
            None,
        )
    if kind in ("categorical", "boolean"):
        return _role_of_labels(profile, tokens)
    return _role_of_numbers(profile, tokens)


def _role_of_labels(profile: ColumnProfile, tokens: list[str]) -> tuple[Role, str, str | None]:
    if profile.distinct > _MAX_CLOCK_DISTINCT:
        return Role.DIMENSION, f"{profile.distinct} labels: a dimension to group by", None
    texts = pd.Series(profile.uniques.astype(str), dtype=object).str.strip().str.lower()
    if bool(texts.str.match(_CLOCK_TEXT).all()):
        return Role.CLOCK, "clock times (HH:MM): a time of day, never a quantity", None
    if profile.distinct > _MAX_NAME_DISTINCT:
        return Role.DIMENSION, f"{profile.distinct} labels: a dimension to group by", None
    labels = set(texts.str.rstrip("."))
    if labels and all(month_number(label) is not None for label in labels):
        return Role.CALENDAR, "month names: a part of the calendar", "month"
    if labels and all(weekday_number(label) is not None for label in labels):
        return Role.CALENDAR, "weekday names: a part of the calendar", "weekday"
    if labels and all(_QUARTER_TEXT.match(label) for label in labels):
        return Role.CALENDAR, "quarters (Q1-Q4): a part of the calendar", "quarter"
    return Role.DIMENSION, f"{profile.distinct} labels: a dimension to group by", None


def sorted_numbers(profile: ColumnProfile) -> np.ndarray | None:
    """The finite-or-infinite, non-missing numbers sorted (computed for numbers from text)."""
    if profile.sorted_numbers is None and profile.numbers is not None:
        values = profile.numbers
        profile.sorted_numbers = np.sort(values[~np.isnan(values)])
    return profile.sorted_numbers


def _role_of_numbers(profile: ColumnProfile, tokens: list[str]) -> tuple[Role, str, str | None]:
    # The checks below only need the distinct values (sorted), often far fewer than the rows.
    if profile.uniques.dtype.kind in "fiu":
        numbers = profile.uniques.to_numpy(dtype="float64")
    else:
        ordered = sorted_numbers(profile)
        numbers = None if ordered is None else np.unique(ordered)
    if numbers is None or numbers.shape[0] == 0:
        return Role.IGNORE, "no numbers", None
    low, high = float(numbers[0]), float(numbers[-1])
    integers = bool(np.isfinite(numbers).all() and (np.trunc(numbers) == numbers).all())
    token_set = set(tokens)
    measure_word = _words(tokens) & (ADDITIVE_WORDS | NON_ADDITIVE_WORDS | STOCK_WORDS)
    if not integers and _is_decimal_year(numbers, token_set):
        return Role.TIME, f"decimal years ({low:g}-{high:g}): the time of each row", "decimal_year"
    if integers:
        part = calendar_part_of(tokens, low, high)
        if part is not None:
            return Role.CALENDAR, f"integer {part}s ({low:g}-{high:g}): a part of time", part
        # R's ts exports an annual series as "time" 1871, 1872, ...: years, not a row number.
        if (
            token_set
            and not token_set - _DECIMAL_YEAR_WORDS
            and _is_decimal_year(numbers, token_set)
        ):
            return Role.CALENDAR, f"integer years ({low:g}-{high:g}): a part of time", "year"
        if token_set & _CLOCK_TOKENS and _is_hhmm(numbers):
            return Role.CLOCK, "HHMM clock times (minutes < 60): a time of day", None
        if not token_set - _ROW_NUMBER_WORDS and _is_row_number(numbers, profile):
            return Role.IDENTIFIER, "consecutive integers, one per row: a row number", None
        if token_set and not token_set - _ROW_NAME_WORDS and profile.distinct == profile.present:
            return Role.IDENTIFIER, "unique integers named like row names: identifies a row", None
        if token_set & _CODE_WORDS and not token_set & (ADDITIVE_WORDS | NON_ADDITIVE_WORDS):
            if profile.distinct <= 50:
                return Role.DIMENSION, "integer codes named like a group: a dimension", None
            return Role.IDENTIFIER, "integer codes named like an entity: never aggregated", None
        if profile.distinct <= DIMENSION_MAX_INT_DISTINCT and not measure_word:
            return Role.DIMENSION, f"{profile.distinct} distinct integers: a category code", None
        if not measure_word and _is_repeated_code(numbers, profile):
            return (
                Role.DIMENSION,
                f"integers 1-{high:g}, each repeated: codes of {profile.distinct} groups",
                None,
            )
    coordinate = _coordinate(tokens, low, high)
    if coordinate is not None:
        return Role.COORDINATE, f"{coordinate}: a position, never averaged or summed", None
    return (*measure_additivity(profile.name), None)


def _coordinate(tokens: list[str], low: float, high: float) -> str | None:
    """What kind of coordinate a number column named `tokens` in [low, high] is, if any."""
    words = set(tokens)
    if tokens == ["long"]:  # "long" alone; inside a name it is too ambiguous ("long_term")
        words.add("longitude")
    for names, smallest, largest, kind in _COORDINATES:
        if words & names and smallest <= low and high <= largest:
            return kind
    return None


def _words(tokens: list[str]) -> set[str]:
    """A name's words, a count's prefix taken off where what it counts adds up: R's `ncases`
    and `ndeaths`, `numorders`, `nbvisits` count cases, deaths, orders and visits."""
    words = set(tokens)
    for token in tokens:
        for prefix in _COUNT_PREFIXES:
            rest = token.removeprefix(prefix)
            if rest != token and rest in ADDITIVE_WORDS:
                words.add(rest)
    return words


def measure_additivity(name: str) -> tuple[Role, str]:
    """Additive, non-additive or stock from the measure's name; non-additive when unsure."""
    tokens = _words(name_tokens(name))
    if tokens & NON_ADDITIVE_WORDS:
        word = sorted(tokens & NON_ADDITIVE_WORDS)[0]
        return Role.NON_ADDITIVE, f"a measure named like a rate, price or average ('{word}')"
    if tokens & STOCK_WORDS:
        word = sorted(tokens & STOCK_WORDS)[0]
        return Role.STOCK, f"a level ('{word}'): summing it over time is meaningless"
    if tokens & ADDITIVE_WORDS:
        word = sorted(tokens & ADDITIVE_WORDS)[0]
        return Role.ADDITIVE, f"a quantity that adds up ('{word}')"
    return Role.NON_ADDITIVE, "a measure whose name does not say it adds up: averaged, not summed"


def calendar_part_of(tokens: list[str], low: float, high: float) -> str | None:
    """The calendar part an integer column named ``tokens`` with values low..high holds."""
    token_set = set(tokens)
    if len(tokens) == 1 and tokens[0] in _CALENDAR_ABBREVIATIONS:
        token_set.add(_CALENDAR_ABBREVIATIONS[tokens[0]])
    for part, (words, lowest, highest) in CALENDAR_PARTS.items():
        if not token_set & words:
            continue
        if lowest <= low and high <= highest:
            return part
        if part == "year" and _SHORT_YEAR[0] <= low and high <= _SHORT_YEAR[1]:
            return "short_year"
    return None


def _is_hhmm(numbers: np.ndarray) -> bool:
    return bool(
        numbers[0] >= 0
        and numbers[-1] <= 2400
        and numbers[-1] >= 100
        and ((numbers % 100) < 60).all()
    )


def _is_row_number(numbers: np.ndarray, profile: ColumnProfile) -> bool:
    """``numbers`` are the distinct values, sorted."""
    if profile.distinct != profile.present or profile.present < 20:
        return False
    return bool(numbers[-1] - numbers[0] == numbers.shape[0] - 1)


def _is_decimal_year(numbers: np.ndarray, tokens: set[str]) -> bool:
    """Distinct values, sorted: years with fractions on a monthly, quarterly or half-year grid."""
    low, high = _DECIMAL_YEAR_RANGE
    if numbers.shape[0] < _MIN_DECIMAL_YEARS or not (low <= numbers[0] and numbers[-1] <= high):
        return False
    if not np.isfinite(numbers).all():
        return False
    if tokens & _DECIMAL_YEAR_WORDS:
        return True
    gaps = np.diff(numbers)
    step = float(np.min(gaps))
    for grid in _DECIMAL_YEAR_STEPS:
        if abs(step - grid) < 1e-3 * grid:
            multiples = gaps / grid
            return bool(np.all(np.abs(multiples - np.round(multiples)) < 1e-2))
    return False


def _is_repeated_code(numbers: np.ndarray, profile: ColumnProfile) -> bool:
    """Distinct integers exactly 1..k (or 0..k-1), k small, every value on several rows."""
    distinct = numbers.shape[0]
    if not DIMENSION_MAX_INT_DISTINCT < distinct <= _CODE_MAX_DISTINCT:
        return False
    if numbers[0] not in (0.0, 1.0) or numbers[-1] - numbers[0] != distinct - 1:
        return False
    return bool(np.min(profile.counts) >= _CODE_MIN_REPEATS)


def _calendar_part_by_values(profile: ColumnProfile) -> str | None:
    numbers = sorted_numbers(profile)
    if numbers is None or numbers.shape[0] == 0:
        return None
    low, high = float(numbers[0]), float(numbers[-1])
    for part in ("year", "month", "day", "hour"):
        _, lowest, highest = CALENDAR_PARTS[part]
        if lowest <= low and high <= highest:
            return part
    return None


def month_number(label: str) -> int | None:
    """1-12 for a month name or its 3-letter abbreviation (any case), else None."""
    text = label.strip().lower().rstrip(".")
    for number, month in enumerate(MONTH_NAMES, start=1):
        if text == month or (len(text) >= 3 and month.startswith(text)):
            return number
    return None


def weekday_number(label: str) -> int | None:
    """0 (Monday) - 6 for a weekday name or abbreviation (any case), else None."""
    text = label.strip().lower().rstrip(".")
    if text in _WEEKDAY_ALIASES:
        return _WEEKDAY_ALIASES[text]
    for number, day in enumerate(WEEKDAY_NAMES):
        if text == day or (len(text) >= 3 and day.startswith(text)):
            return number
    return None


def role_dumps(semantics: Semantics, order: list[str]) -> list[dict[str, object]]:
    """The roles as JSON dicts (camelCase), in file order."""
    return [semantics.roles[name].model_dump(by_alias=True, mode="json") for name in order]
