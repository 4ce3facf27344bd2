"""Analysis options: what parses, what is refused and why, and the canonical stored form."""

from __future__ import annotations

import json

import pytest

from datapilot_runtime.report.insights import OVERRIDE_ROLES
from datapilot_runtime.report.options import (
    MAX_OPTIONS_BYTES,
    MAX_ROLE_ENTRIES,
    NO_OPTIONS,
    InvalidOptions,
    parse_options,
)


def test_every_override_role_parses_and_keeps_the_uploaders_order() -> None:
    roles = {f"col {index}": role for index, role in enumerate(sorted(OVERRIDE_ROLES))}
    options = parse_options(json.dumps({"roles": roles}))
    assert list(options.roles.items()) == list(roles.items())
    assert json.loads(options.to_json()) == {"roles": roles}
    assert parse_options(options.to_json()) == options


@pytest.mark.parametrize("raw", ["", "  \n", b"", "{}", '{"roles": {}}'])
def test_nothing_to_override_is_no_options(raw: str | bytes) -> None:
    options = parse_options(raw)
    assert options == NO_OPTIONS
    assert options.to_json() == ""


@pytest.mark.parametrize(
    ("raw", "why"),
    [
        ('{"roles": {"year": "calendar"', "not valid JSON"),
        ('["roles"]', "must be a JSON object"),
        ('"calendar"', "must be a JSON object"),
        ('{"roles": {"year": "calendar"}, "colour": "red"}', "unknown key 'colour'"),
        ('{"roles": ["year"]}', "options.roles must be an object"),
        ('{"roles": {"year": "weekday"}}', "unknown role 'weekday' for column 'year'"),
        ('{"roles": {"year": 3}}', "unknown role 3 for column 'year'"),
        ('{"roles": {"year": null}}', "unknown role null"),
        ('{"roles": {"": "dimension"}}', "empty column name"),
        ('{"roles": {"a": "dimension", "a": "measure"}}', "name 'a' twice"),
        (b'{"roles": {"\xff": "dimension"}}', "not UTF-8"),
    ],
)
def test_malformed_options_say_why(raw: str | bytes, why: str) -> None:
    with pytest.raises(InvalidOptions, match=why):
        parse_options(raw)


def test_unknown_roles_list_the_roles_there_are() -> None:
    with pytest.raises(InvalidOptions) as info:
        parse_options('{"roles": {"x": "metric"}}')
    assert all(role in str(info.value) for role in OVERRIDE_ROLES)


def test_too_many_entries_are_refused_and_the_limit_itself_is_not() -> None:
    at_limit = {f"c{index}": "dimension" for index in range(MAX_ROLE_ENTRIES)}
    assert len(parse_options(json.dumps({"roles": at_limit})).roles) == MAX_ROLE_ENTRIES
    over = {**at_limit, "one more": "dimension"}
    with pytest.raises(InvalidOptions, match=f"{MAX_ROLE_ENTRIES + 1} entries"):
        parse_options(json.dumps({"roles": over}))


def test_over_long_options_are_refused_before_parsing() -> None:
    raw = json.dumps({"roles": {"x" * MAX_OPTIONS_BYTES: "dimension"}})
    with pytest.raises(InvalidOptions, match="limit is 65536"):
        parse_options(raw)


def test_echoed_column_names_are_cut_short() -> None:
    with pytest.raises(InvalidOptions) as info:
        parse_options(json.dumps({"roles": {"n" * 5000: "bogus"}}))
    assert len(str(info.value)) < 400
