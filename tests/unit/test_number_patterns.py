"""The number and quarter patterns: linear rewrites of the old (backtracking) ones, same language.

The old patterns are kept here only as the reference the new ones must agree with; their speed
is not asserted (the hostile corpus runs the backtracking shapes under a CPU bound instead).
"""

from __future__ import annotations

import re

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis_svc.engine import column_profile
from analysis_svc.engine.readers import numbers

OLD_PLAIN_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
OLD_QUARTER = re.compile(r"^\s*(\d{4})\s*-?\s*[Qq]([1-4])\s*$")
OLD_PROFILE_NUMBER = re.compile(r" *[-+]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)? *")
NUMBERISH = st.text(alphabet="0123456789.,eE+- x", max_size=14)
QUARTERISH = st.text(alphabet="20159 -Qq34\t", max_size=14)


@settings(max_examples=400, deadline=None)
@given(text=NUMBERISH)
def test_plain_number_pattern_accepts_what_it_did(text: str) -> None:
    assert bool(numbers.PLAIN_NUMBER.fullmatch(text)) == bool(OLD_PLAIN_NUMBER.fullmatch(text))
    new_profile = re.fullmatch(column_profile._PLAIN_NUMBER, text)
    assert bool(new_profile) == bool(OLD_PROFILE_NUMBER.fullmatch(text))


@settings(max_examples=400, deadline=None)
@given(text=QUARTERISH)
def test_quarter_pattern_accepts_what_it_did(text: str) -> None:
    new = re.match(column_profile._QUARTER, text)
    old = OLD_QUARTER.match(text)
    assert (new and new.groups()) == (old and old.groups())


def test_a_field_longer_than_the_cap_is_never_a_number() -> None:
    digits = "1" * (numbers.MAX_NUMBER_CHARS + 1)
    assert numbers.decimal_evidence([digits + ".5", "1.5"]) == (1, 0)
    series = pd.Series(["1", "2", digits, "3.5"] * 10)
    converted, failed = numbers.text_to_numbers(series, ".", lenient=True, max_failed=0.5)
    assert converted is not None and failed == 10
    assert converted.isna().sum() == 10
    assert numbers.text_to_numbers(pd.Series([digits] * 5), ".")[0] is None


def test_backtracking_shapes_are_not_numbers() -> None:
    for text in ("1" * 32_000 + "x", "9" * 20_000 + "e", " 1" + " " * 20_000 + "x"):
        assert not numbers.short_enough(text)
        assert numbers.decimal_evidence([text]) == (0, 0)
