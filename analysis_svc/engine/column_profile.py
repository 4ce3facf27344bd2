"""Decide each column's type: numeric, id, datetime, boolean, categorical, text, constant, empty."""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from pandas.api import types as ptypes
from pandas.tseries.api import guess_datetime_format

from analysis_svc.engine.readers.numbers import decimal_evidence, strip_decorations, text_to_numbers

ID_MIN_ROWS = 20
ID_MIN_DISTINCT_SHARE = 0.98
DATE_MIN_SHARE = 0.95
TEXT_MIN_MEAN_LENGTH = 50
_SAMPLE = 500
# Numbers in whole steps (integers, cents, tenths) spanning at most this many steps per row (or
# _DENSE_MIN_SPAN) are counted rather than sorted: ages, quantities, delays, prices, weights.
_DENSE_SPAN_PER_ROW = 2
_DENSE_MIN_SPAN = 1 << 16
_DENSE_SCALES = (1.0, 10.0, 100.0, 1000.0, 10000.0)
_DENSE_SAMPLE = 256  # values that choose the scale before the whole column is checked
_MAX_EXACT = 2.0**52
_STAMP_UNITS = (86_400 * 10**9, 3_600 * 10**9, 60 * 10**9, 10**9)  # a day ... a second, in ns
_BOOLEAN_TOKENS = frozenset({"true", "false", "yes", "no", "y", "n", "0", "1"})
_ID_TOKENS = frozenset(
    {"id", "key", "code", "zip", "zipcode", "postcode", "postal"}
    | {"phone", "sku", "uuid", "guid", "ean", "isbn", "identifier", "ref"}
)
_NUMBER_TOKENS = frozenset({"no", "nr", "num", "number"})
_NAME_TOKENS = re.compile(r"[A-Z]?[a-z]+|[A-Z]+(?![a-z])|\d+")
# A string is only tried as a date when it carries a year-like part and is not a plain
# number; this keeps "12", "May" or "10:30" (which dateutil would complete with today's
# date) from turning a column into dates and keeps the report independent of the clock.
_DATE_LIKE = r"\d{4}|\d{1,2}[-/.]\d{1,2}[-/.]\d{2}"
# Neither may backtrack (see readers.numbers): `\s*(?:-\s*)?`, not `\s*-?\s*`, and
# `[0-9]+(?:\.[0-9]*)?`, not `[0-9]+\.?[0-9]*`; labels are also cut to MAX_LABEL_CHARS first.
_QUARTER = r"^\s*(\d{4})\s*(?:-\s*)?[Qq]([1-4])\s*$"
_PLAIN_NUMBER = r" *[-+]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)? *"


@dataclass
class ColumnProfile:
    """A typed view of one column, shared by every KPI module.

    ``codes``/``uniques`` are the factorised non-missing values (code -1 = missing), reused
    for top values, duplicate rows and group-bys; for numbers and timestamps the codes are
    only computed when asked for (``sortable`` holds the values to compute them from).
    ``numbers`` (float64 with NaN) is set for numeric and id columns that are numbers,
    ``dates`` (datetime64[ns], naive UTC, NaT) for datetime columns.
    """

    name: str
    kind: str
    uniques: pd.Index
    missing: int
    rows: int
    known_codes: np.ndarray | None = None
    sortable: np.ndarray | None = None
    sorted_numbers: np.ndarray | None = None
    known_counts: np.ndarray | None = None
    #: Numbers counted in steps of 1 / dense_scale (`_dense_decimals`), codes looked up so.
    dense_scale: float | None = None
    #: Timestamps counted in whole steps of this many ns (`_dense_stamps`), codes looked up so.
    dense_unit: int | None = None
    known_finite: np.ndarray | None = None
    known_filled: np.ndarray | None = None
    numbers: np.ndarray | None = None
    dates: np.ndarray | None = None
    numbers_as_text: int = 0
    unparsed_numbers: int = 0
    mixed_date_formats: bool = False
    unparsed_dates: int = 0
    mean_length: float | None = None
    #: Periods of a datetime column by unit, shared by the time series and the insights.
    periods_cache: dict[str, object] = field(default_factory=dict)

    @property
    def distinct(self) -> int:
        return len(self.uniques)

    @property
    def present(self) -> int:
        return self.rows - self.missing

    @property
    def codes(self) -> np.ndarray:
        """Code of every row's value (index into ``uniques``), -1 for missing."""
        if self.known_codes is None:
            assert self.sortable is not None
            self.known_codes = _codes_of_sorted(
                self.sortable, self.uniques, self.dense_scale, self.dense_unit
            )
        return self.known_codes

    @property
    def counts(self) -> np.ndarray:
        """Number of rows holding each distinct value (aligned with ``uniques``)."""
        if self.known_counts is None:
            self.known_counts = code_counts(self.codes, self.distinct)
        return self.known_counts

    @property
    def finite(self) -> np.ndarray:
        """Mask of rows whose number is finite (numeric columns; computed once)."""
        if self.known_finite is None:
            assert self.numbers is not None
            self.known_finite = np.isfinite(self.numbers)
        return self.known_finite

    @property
    def filled(self) -> np.ndarray:
        """The numbers with missing and infinite values as 0: the weights of per-group sums,
        shared by segments, shares and period totals (computed once, never modified)."""
        if self.known_filled is None:
            assert self.numbers is not None
            finite = self.finite
            complete = bool(finite.all())
            self.known_filled = self.numbers if complete else np.where(finite, self.numbers, 0.0)
        return self.known_filled

    def codes_at(self, index: np.ndarray) -> np.ndarray:
        """Codes of the rows at ``index`` (equal values -> equal codes, -1 for missing)."""
        if self.known_codes is not None or self.sortable is None:
            codes: np.ndarray = self.codes[index]
            return codes
        # Looked up among the column's distinct values (searched, or counted when dense):
        # no sort of the rows taken.
        return _codes_of_sorted(
            self.sortable[index], self.uniques, self.dense_scale, self.dense_unit
        )


def profile_column(name: str, series: pd.Series) -> ColumnProfile:
    """Type one column and factorise it; never looks at more than the column itself."""
    profile = _factorize(name, series)
    if profile.present == 0:
        return profile
    if profile.distinct == 1:
        profile.kind = "constant"
        return profile
    if _is_boolean(series, profile):
        profile.kind = "boolean"
        return profile
    if ptypes.is_datetime64_any_dtype(series.dtype):
        profile.kind, profile.dates = "datetime", profile.sortable
        return profile
    if ptypes.is_numeric_dtype(series.dtype):
        profile.numbers = profile.sortable
        profile.kind = "id" if _is_numeric_id(profile) else "numeric"
        return profile
    return _classify_strings(series, profile)


# --------------------------------------------------------------------------- helpers


def _factorize(name: str, series: pd.Series) -> ColumnProfile:
    """Distinct values and missing count; numbers and timestamps via a fast sort."""
    dtype = series.dtype
    rows = int(series.shape[0])
    if ptypes.is_numeric_dtype(dtype) and not ptypes.is_bool_dtype(dtype):
        values = series.to_numpy(dtype="float64", na_value=np.nan)
        # A NumPy integer column holds neither missing values nor fractions (nor -0.0).
        integral = isinstance(dtype, np.dtype) and dtype.kind in "iu"
        present = values if integral else values[~np.isnan(values)]
        dense = _dense_decimals(present, integral)
        counts = None
        if dense is None:
            ordered = np.sort(present)
            uniques = _distinct_sorted(ordered)
        else:  # a counting sort: the same sorted values, distinct values and counts in O(n)
            low, scale, per_step = dense
            used = np.flatnonzero(per_step)
            uniques, counts = (used + low) / scale, per_step[used]
            ordered = np.repeat(uniques, counts)
        profile = ColumnProfile(
            name, "empty", pd.Index(uniques), rows - int(present.shape[0]), rows
        )
        profile.sortable, profile.sorted_numbers = values, ordered
        profile.dense_scale = None if dense is None else dense[1]
        profile.known_counts = counts
        return profile
    if ptypes.is_datetime64_any_dtype(dtype):
        stamps = _naive_utc(series)
        values = stamps[~np.isnat(stamps)].view(np.int64)
        dense_stamps = _dense_stamps(values)
        unit = None
        if dense_stamps is None:
            distinct, counts = _distinct_sorted(np.sort(values)), None
        else:  # dates, hours: counted, as dense numbers are
            distinct, counts, unit = dense_stamps
        uniques = pd.DatetimeIndex(distinct.view("datetime64[ns]"))
        missing = rows - int(values.shape[0])
        profile = ColumnProfile(name, "empty", uniques, missing, rows, sortable=stamps)
        profile.known_counts, profile.dense_unit = counts, unit
        return profile
    counted: np.ndarray | None = None
    if isinstance(dtype, pd.CategoricalDtype):
        codes, uniques, counted = _used_categories(series)
    else:
        codes, distinct = pd.factorize(series, use_na_sentinel=True)
        codes, uniques = codes.astype(np.int64, copy=False), pd.Index(distinct)
    codes, kept = _drop_blank_uniques(codes, uniques)
    if kept is not uniques:
        counted = None  # blanks became missing: counted again when asked
    missing = int((codes < 0).sum()) if counted is None else rows - int(counted.sum())
    profile = ColumnProfile(name, "empty", kept, missing, rows, known_codes=codes)
    profile.known_counts = counted
    return profile


def _dense_decimals(
    present: np.ndarray, integral: bool = False
) -> tuple[float, float, np.ndarray] | None:
    """(lowest value x scale, scale, rows per step of 1/scale from it) when every value is a
    whole number of 1/scale (scale 1, 10, ..., 10^4: counts, prices, one-decimal weights) over
    few enough steps (at most 2 x the rows, or 65,536): counting then replaces sorting.

    A value is taken only when dividing its whole number of steps by the scale gives the very
    same float back, so the distinct values rebuilt from the counts are the values themselves.
    `integral`: the values come from an integer column (whole steps of 1, no -0.0 to check).
    """
    if present.shape[0] == 0:
        return None
    sample = present[:_DENSE_SAMPLE]
    scale = (
        1.0
        if integral
        else next((s for s in _DENSE_SCALES if _whole_steps(sample, s) is not None), None)
    )
    if scale is None:
        return None
    low, high = float(present.min()) * scale, float(present.max()) * scale
    if not (abs(low) < _MAX_EXACT and abs(high) < _MAX_EXACT):
        return None
    if high - low > max(_DENSE_MIN_SPAN, _DENSE_SPAN_PER_ROW * present.shape[0]):
        return None
    if integral:
        first, steps = low, present
    else:
        if low <= 0 <= high and bool(np.any(np.signbit(present) & (present == 0))):
            return None  # -0.0 (a rounded "-0.00") would come back as 0.0: sorted as written
        whole = _whole_steps(present, scale)
        if whole is None:
            return None
        first, steps = float(whole.min()), whole
    return first, scale, np.bincount((steps - first).astype(np.int64))


def _dense_stamps(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, int] | None:
    """(distinct sorted values, rows holding each, the unit in ns) of timestamps (int64 ns)
    that are whole days, hours, minutes or seconds apart from the lowest, over few enough steps
    (the span `_dense_decimals` allows): a count then replaces the sort. None for any other
    column."""
    if values.shape[0] == 0:
        return None
    low, high = int(values.min()), int(values.max())
    limit = max(_DENSE_MIN_SPAN, _DENSE_SPAN_PER_ROW * values.shape[0])
    if high - low >= 2**62:  # the offsets below would overflow int64
        return None
    offsets = values - low
    head = offsets[:_DENSE_SAMPLE]
    for unit in _STAMP_UNITS:
        if (high - low) // unit > limit:
            return None  # a finer unit spans even more steps
        if np.any(head % unit):
            continue  # a look at the first values spares a pass over the column
        steps = offsets // unit
        if np.array_equal(steps * unit, offsets):  # offsets >= 0: whole units exactly
            per_step = np.bincount(steps)
            used = np.flatnonzero(per_step)
            return used * unit + low, per_step[used], unit
    return None


def _whole_steps(values: np.ndarray, scale: float) -> np.ndarray | None:
    """values x scale rounded, when each divided by scale is exactly the value; else None."""
    with np.errstate(all="ignore"):
        steps = np.round(values * scale) if scale != 1 else values
        exact = np.array_equal(steps / scale if scale != 1 else np.trunc(steps), values)
    return steps if exact else None


def dense_positions(uniques: np.ndarray, scale: float) -> np.ndarray:
    """Position of every step low..high (of 1/scale) among `uniques`, -1 where absent, for
    sorted distinct numbers that `_dense_decimals` counted: an O(1) lookup per value."""
    steps = np.round(uniques * scale).astype(np.int64)
    positions = np.full(int(steps[-1] - steps[0]) + 1, -1, dtype=np.int64)
    positions[steps - steps[0]] = np.arange(uniques.shape[0])
    return positions


def code_counts(codes: np.ndarray, size: int) -> np.ndarray:
    """Rows per code 0..size-1 (code -1, missing, is not counted); no masked copy."""
    return np.bincount(codes + 1, minlength=size + 1)[1:]


def _distinct_sorted(ordered: np.ndarray) -> np.ndarray:
    """Distinct values of a sorted array (no second sort or hash)."""
    if ordered.shape[0] == 0:
        return ordered
    keep = np.empty(ordered.shape[0], dtype=bool)
    keep[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=keep[1:])
    return ordered[keep]


def _used_categories(series: pd.Series) -> tuple[np.ndarray, pd.Index, np.ndarray]:
    """Codes, categories and rows per category of a categorical column, without categories
    no row uses."""
    codes = series.cat.codes.to_numpy().astype(np.int64)
    categories = pd.Index(series.cat.categories)
    counts = code_counts(codes, len(categories))
    used = counts > 0
    if used.all():
        return codes, categories, counts
    remap = np.cumsum(used) - 1
    codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
    return codes, categories[used], counts[used]


def _codes_of_sorted(
    values: np.ndarray,
    uniques: pd.Index | None,
    scale: float | None = None,
    unit: int | None = None,
) -> np.ndarray:
    """Codes of numbers/timestamps: positions in the sorted distinct values, -1 for missing.

    Counted columns (numbers in steps of 1 / ``scale``, timestamps in steps of ``unit`` ns)
    look each value up by its step; the others are searched among the distinct values."""
    present = ~(np.isnat(values) if values.dtype.kind == "M" else np.isnan(values))
    codes = np.full(values.shape[0], -1, dtype=np.int64)
    if uniques is None:
        _, inverse = np.unique(values[present], return_inverse=True)
        codes[present] = inverse
        return codes
    distinct = uniques.to_numpy()
    if unit is not None and distinct.shape[0]:
        steps = distinct.view(np.int64) // unit  # whole steps: exact
        positions = np.full(int(steps[-1] - steps[0]) + 1, -1, dtype=np.int64)
        positions[steps - steps[0]] = np.arange(distinct.shape[0])
        codes[present] = positions[values[present].view(np.int64) // unit - steps[0]]
    elif scale is None or distinct.shape[0] == 0:
        codes[present] = np.searchsorted(distinct, values[present])
    else:
        positions = dense_positions(distinct, scale)
        steps = np.round(values[present] * scale).astype(np.int64)
        codes[present] = positions[steps - round(float(distinct[0]) * scale)]
    return codes


def _drop_blank_uniques(codes: np.ndarray, uniques: pd.Index) -> tuple[np.ndarray, pd.Index]:
    """Empty / whitespace-only strings count as missing: recode them to -1."""
    if uniques.dtype.kind in "fiumMb" or len(uniques) == 0:
        return codes, uniques
    try:
        blank = pd.Series(uniques).str.strip().eq("").to_numpy(dtype=bool, na_value=False)
    except AttributeError:  # object values that are not strings
        return codes, uniques
    if not blank.any():
        return codes, uniques
    remap = np.cumsum(~blank) - 1
    remap[blank] = -1
    new_codes = np.where(codes >= 0, remap[np.maximum(codes, 0)], -1)
    return new_codes, uniques[~blank]


def _naive_utc(series: pd.Series) -> np.ndarray:
    if getattr(getattr(series, "dt", None), "tz", None) is not None:
        series = series.dt.tz_convert(None)  # to UTC, then naive: one step
    stamps: np.ndarray = series.to_numpy(dtype="datetime64[ns]")
    return stamps


def _is_boolean(series: pd.Series, profile: ColumnProfile) -> bool:
    if ptypes.is_bool_dtype(series.dtype):
        return True
    if profile.distinct != 2 or ptypes.is_datetime64_any_dtype(series.dtype):
        return False
    tokens = {display_string(value).strip().lower() for value in profile.uniques}
    return tokens <= _BOOLEAN_TOKENS


def name_looks_like_id(name: str) -> bool:
    """True for names such as id, customer_id, customerId, ID_customer, order no, zip code."""
    tokens = name_tokens(name)
    if not tokens:
        return False
    if tokens[-1] in _NUMBER_TOKENS:  # "order no", "invoiceNumber"; not a bare "number"
        return len(tokens) >= 2
    return tokens[-1] in _ID_TOKENS or tokens[0] == "id"


def name_tokens(name: str) -> list[str]:
    """Lower-case words of a column name (snake_case, camelCase, spaces, digits)."""
    return [token.lower() for token in _NAME_TOKENS.findall(name)]


def _is_integer_valued(numbers: np.ndarray) -> bool:
    finite = numbers[~np.isnan(numbers)]
    return bool(np.isfinite(finite).all() and (np.trunc(finite) == finite).all())


def _is_numeric_id(profile: ColumnProfile) -> bool:
    """Integers named like an id, or (unnamed) near-unique integers that look like codes."""
    assert profile.numbers is not None
    return (
        profile.present >= ID_MIN_ROWS
        and name_looks_like_id(profile.name)
        and _is_integer_valued(profile.numbers)
    )


def _classify_strings(series: pd.Series, profile: ColumnProfile) -> ColumnProfile:
    texts = pd.Series(profile.uniques.astype("str"))
    counts = profile.counts
    numbers = _numbers_from_text(texts, profile.codes)
    if numbers is not None:
        values, unparsed = numbers
        profile.numbers, profile.numbers_as_text, profile.unparsed_numbers = (
            values,
            profile.present - unparsed,
            unparsed,
        )
        profile.kind = "id" if _is_numeric_id(profile) else "numeric"
        return profile
    parsed = _parse_dates(_quarters_as_dates(texts), counts, profile.present)
    if parsed is not None:
        stamps, mixed = parsed
        profile.kind, profile.mixed_date_formats = "datetime", mixed
        _recode_as_dates(profile, stamps)
        return profile
    lengths = texts.str.len().to_numpy(dtype="float64")
    profile.mean_length = float(np.dot(lengths, counts) / max(profile.present, 1))
    unique_share = profile.distinct / profile.present
    if profile.mean_length > TEXT_MIN_MEAN_LENGTH:
        profile.kind = "text"
    elif (profile.present >= ID_MIN_ROWS and unique_share >= ID_MIN_DISTINCT_SHARE) or (
        profile.present >= ID_MIN_ROWS and name_looks_like_id(profile.name) and unique_share >= 0.5
    ):
        profile.kind = "id"
    else:
        profile.kind = "categorical"
    return profile


def _recode_as_dates(profile: ColumnProfile, stamps: np.ndarray) -> None:
    """Replace the text codes by codes of the distinct parsed timestamps (unparsed: -1)."""
    parsed = ~np.isnat(stamps)
    distinct = np.unique(stamps[parsed])
    per_text = np.full(stamps.shape[0] + 1, -1, dtype=np.int64)
    per_text[:-1][parsed] = np.searchsorted(distinct, stamps[parsed])
    codes = profile.codes
    profile.known_codes = per_text[np.where(codes >= 0, codes, stamps.shape[0])]
    profile.unparsed_dates = int(((profile.known_codes < 0) & (codes >= 0)).sum())
    profile.uniques = pd.DatetimeIndex(distinct)
    profile.known_counts = None
    stamp_of_code = np.append(distinct, np.datetime64("NaT", "ns"))
    profile.dates = stamp_of_code[profile.known_codes]


def _numbers_from_text(texts: pd.Series, codes: np.ndarray) -> tuple[np.ndarray, int] | None:
    """Numbers stored as text (currency, %, separators): 95 % must parse, the rest -> NaN."""
    sample = [strip_decorations(str(value)) for value in texts.iloc[:_SAMPLE]]
    dot, comma = decimal_evidence(sample)
    converted, _ = text_to_numbers(texts, "," if comma > dot else ".", lenient=True, max_failed=1.0)
    if converted is None:
        return None
    per_unique = converted.to_numpy(dtype="float64")
    present = codes >= 0
    values = np.where(present, per_unique[np.maximum(codes, 0)], np.nan)
    unparsed_rows = int(np.isnan(values).sum() - (~present).sum())
    if unparsed_rows > (1 - DATE_MIN_SHARE) * int(present.sum()):
        return None
    return values, unparsed_rows


def _parse_dates(
    texts: pd.Series, counts: np.ndarray, total: int
) -> tuple[np.ndarray, bool] | None:
    """Parse unique strings as UTC-naive timestamps if >= 95 % of the values are dates.

    Returns (timestamps per unique value, whether more than one format was needed).
    """
    if texts.shape[0] > _SAMPLE:
        sample = texts.iloc[:_SAMPLE]
        looks = _date_like(sample)
        if float(looks.mean()) < 0.5:
            return None
        if not _sample_parses(sample[looks], _candidate_formats(str(sample[looks].iloc[0]))):
            return None
    eligible = _date_like(texts)
    if int(counts[eligible].sum()) < DATE_MIN_SHARE * total:
        return None
    example = str(texts[eligible].iloc[int(np.argmax(counts[eligible]))])
    formats = _candidate_formats(example)
    best: pd.Series | None = None
    best_count = -1
    for date_format in formats:
        parsed = pd.to_datetime(texts, errors="coerce", format=date_format, utc=True)
        parsed_count = int(counts[parsed.notna().to_numpy()].sum())
        if parsed_count > best_count:
            best, best_count = parsed, parsed_count
    assert best is not None
    eligible_count = int(counts[eligible].sum())
    mixed = best_count < eligible_count
    if mixed:
        best = pd.to_datetime(texts, errors="coerce", format="mixed", utc=True)
        best_count = int(counts[best.notna().to_numpy()].sum())
    if best_count < DATE_MIN_SHARE * total:
        return None
    stamps = best.dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    return stamps, mixed


def _quarters_as_dates(texts: pd.Series) -> pd.Series:
    """'2015Q3' / '2015-Q3' / '2015 q3' as '2015-07-01' (pandas deprecates parsing them)."""
    if texts.shape[0] == 0 or re.match(_QUARTER, str(texts.iloc[0])) is None:
        return texts  # a look at one value spares the regex over every distinct value
    parts = texts.str.extract(_QUARTER, expand=True)
    found = parts[0].notna().to_numpy()
    if not found.any():
        return texts
    months = (parts[1][found].astype(int) * 3 - 2).astype(str).str.zfill(2)
    converted = texts.copy()
    converted[found] = (parts[0][found] + "-" + months + "-01").to_numpy()
    return converted


def _date_like(texts: pd.Series) -> np.ndarray:
    looks = texts.str.contains(_DATE_LIKE, regex=True)
    plain = texts.str.contains(f"^(?:{_PLAIN_NUMBER})$", regex=True)
    result: np.ndarray = (looks & ~plain).to_numpy(dtype=bool, na_value=False)
    return result


def _sample_parses(sample: pd.Series, formats: list[str]) -> bool:
    """Cheap pre-check on distinct values: does any single format parse most of them?"""
    for date_format in formats:
        parsed = pd.to_datetime(sample, errors="coerce", format=date_format, utc=True)
        if float(parsed.notna().mean()) >= DATE_MIN_SHARE:
            return True
    parsed = pd.to_datetime(sample.iloc[:50], errors="coerce", format="mixed", utc=True)
    return float(parsed.notna().mean()) >= DATE_MIN_SHARE


def _candidate_formats(example: str) -> list[str]:
    formats = ["ISO8601"]
    for dayfirst in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            guessed = guess_datetime_format(example, dayfirst=dayfirst)
        if guessed is not None and str(guessed) not in formats:
            formats.append(str(guessed))
    return formats


def display_string(value: object) -> str:
    """A value as shown in the report; integer-valued floats print without '.0'."""
    if (
        isinstance(value, float | np.floating)
        and float(value).is_integer()
        and abs(float(value)) < 2.0**53
    ):
        return str(int(value))
    if isinstance(value, np.bool_):
        return str(bool(value))
    if isinstance(value, pd.Timestamp):
        return str(value.isoformat())
    return str(value)
