"""The column profile of numbers: counted (whole steps) or sorted, the same facts either way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis_svc.engine.column_profile import ColumnProfile, profile_column

ROWS = 5_000


def _by_sorting(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The reference: sorted present values, distinct values, their counts, and row codes."""
    present = values[~np.isnan(values)]
    uniques, counts = np.unique(present, return_counts=True)
    codes = np.full(values.shape[0], -1, dtype=np.int64)
    codes[~np.isnan(values)] = np.searchsorted(uniques, present)
    return np.sort(present), uniques, counts, codes


def _assert_same_facts(profile: ColumnProfile, values: np.ndarray) -> None:
    ordered, uniques, counts, codes = _by_sorting(values)
    assert profile.sorted_numbers is not None
    np.testing.assert_array_equal(profile.sorted_numbers, ordered)
    np.testing.assert_array_equal(profile.uniques.to_numpy(), uniques)
    np.testing.assert_array_equal(profile.counts, counts)
    np.testing.assert_array_equal(profile.codes, codes)
    assert profile.missing == int(np.isnan(values).sum())


def _column(kind: str, rng: np.random.Generator) -> np.ndarray:
    if kind == "integers":
        return rng.integers(-40, 1300, ROWS).astype(float)
    if kind == "cents":
        return rng.gamma(2.0, 50.0, ROWS).round(2)
    if kind == "tenths with gaps":
        values = rng.normal(20.0, 4.0, ROWS).round(1)
        values[rng.random(ROWS) < 0.1] = np.nan
        return values
    if kind == "thirds":  # no decimal scale holds them: sorted
        return rng.integers(0, 30, ROWS) / 3
    if kind == "wide integers":  # a span of 10^12 steps: sorted
        return rng.integers(0, 10**12, ROWS).astype(float)
    raise AssertionError(kind)


@pytest.mark.parametrize(
    ("kind", "counted"),
    [
        ("integers", True),
        ("cents", True),
        ("tenths with gaps", True),
        ("thirds", False),
        ("wide integers", False),
    ],
)
def test_numbers_are_counted_when_they_are_whole_steps(kind: str, counted: bool) -> None:
    values = _column(kind, np.random.default_rng(3))
    profile = profile_column("x", pd.Series(values))
    assert (profile.dense_scale is not None) is counted
    _assert_same_facts(profile, values)


def test_a_negative_zero_keeps_the_sorted_path() -> None:
    # A rounded "-0.00" stays -0.0 in the report's statistics, as the sort keeps it.
    values = np.array([-0.0] * 7 + [0.25, -1.5, 3.0] * 3)
    profile = profile_column("x", pd.Series(values))
    assert profile.dense_scale is None
    assert profile.sorted_numbers is not None
    assert np.signbit(profile.sorted_numbers).sum() == 10


def test_infinities_and_huge_values_are_sorted() -> None:
    values = np.array([1.0, 2.0, np.inf, 3.0, np.nan, 2.0**60] * 10)
    profile = profile_column("x", pd.Series(values))
    assert profile.dense_scale is None
    _assert_same_facts(profile, values)


def test_codes_of_sampled_rows_match_the_whole_columns() -> None:
    values = _column("cents", np.random.default_rng(5))
    profile = profile_column("x", pd.Series(values))
    rows = np.arange(0, ROWS, 7)
    sampled = profile.codes_at(rows)
    # Equal values get equal codes on the sample too (its own numbering).
    whole = profile.codes[rows]
    assert len(set(zip(sampled.tolist(), whole.tolist(), strict=True))) == len(set(whole.tolist()))


@pytest.mark.parametrize(
    ("freq", "counted"), [("D", True), ("h", True), ("min", True), ("37s", True), ("1ms", False)]
)
def test_whole_unit_timestamps_are_counted_with_the_values_and_counts_of_a_sort(
    freq: str, counted: bool
) -> None:
    rng = np.random.default_rng(5)
    steps = pd.date_range("2021-03-01", periods=900, freq=freq)
    stamps = pd.Series(steps[rng.integers(0, 900, 5_000)]).where(rng.random(5_000) > 0.1)
    profile = profile_column("at", stamps)
    present = stamps.dropna()
    expected = present.value_counts().sort_index()
    assert (profile.known_counts is not None) is counted  # counted, not sorted
    assert profile.kind == "datetime"
    assert list(profile.uniques) == list(expected.index)
    assert profile.counts.tolist() == expected.tolist()
    assert profile.missing == int(stamps.isna().sum())


@pytest.mark.parametrize(
    ("start", "freq"),
    [("2021-03-01 10:30", "h"), ("1969-12-30 23:59:13", "37s"), ("1950-01-01", "D")],
)
def test_codes_of_counted_timestamps_are_their_positions_among_the_distinct_values(
    start: str, freq: str
) -> None:
    rng = np.random.default_rng(8)
    steps = pd.date_range(start, periods=700, freq=freq)
    stamps = pd.Series(steps[rng.integers(0, 700, 4_000)]).where(rng.random(4_000) > 0.1)
    profile = profile_column("at", stamps)
    assert profile.dense_unit is not None  # counted: codes are looked up by step
    values = stamps.to_numpy(dtype="datetime64[ns]")
    present = ~np.isnat(values)
    expected = np.full(values.shape[0], -1)
    expected[present] = np.searchsorted(profile.uniques.to_numpy(), values[present])
    rows = np.arange(0, 4_000, 3)
    assert profile.codes_at(rows).tolist() == expected[rows].tolist()
    assert profile.codes.tolist() == expected.tolist()


def test_filled_numbers_are_zero_where_missing_or_infinite_and_computed_once() -> None:
    profile = profile_column("x", pd.Series([1.5, np.nan, -np.inf, 4.0, np.inf, 2.0] * 5))
    assert profile.filled.tolist() == [1.5, 0.0, 0.0, 4.0, 0.0, 2.0] * 5
    assert profile.filled is profile.filled
    complete = profile_column("y", pd.Series([1.0, 2.5, 3.0] * 10))
    assert complete.filled is complete.numbers


@pytest.mark.parametrize("blank", [False, True])
def test_counts_of_a_categorical_skip_unused_categories_and_blanks(blank: bool) -> None:
    values = ["b", "a", None, "c", "a", "b", "a"] * 4 + ([" "] * 3 if blank else [])
    series = pd.Series(pd.Categorical(values, categories=["z", "a", "b", "c", " "]))
    profile = profile_column("s", series)
    assert list(profile.uniques) == ["a", "b", "c"]
    assert profile.counts.tolist() == [12, 8, 4]
    assert profile.missing == 4 + (3 if blank else 0)
