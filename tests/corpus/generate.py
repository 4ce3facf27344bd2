"""The engine's corpus: small CSV files with planted stories and traps (deterministic seed).

Run ``python -m tests.corpus.generate DIR`` to write them; tests call ``generate(dir)``.
Each file's stories (what must be found) and traps (columns nothing may be totalled, trended
or correlated on) are listed in ``STORIES`` and ``TRAPS``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

SEED = 20260101

#: file -> candidate key -> fields the candidate must have.
STORIES: dict[str, dict[str, dict[str, object]]] = {
    "stores.csv": {
        "segment.unit_price.region": {"segment": "North", "direction": "high"},
        "concentration.revenue.product": {"top": "Widget"},
    },
    "visits_monthly.csv": {"season.visits.year": {"peak": "July"}},
    "river_yearly.csv": {"level_shift.flow": {"period": "1980", "lastPeriodBefore": "1979"}},
    "panel_year_month.csv": {"season.units_sold.year": {"peak": "December"}},
}
#: file -> trap columns (calendar parts, HHMM times, ids, medians, rates, per-capita, stock).
TRAPS: dict[str, list[str]] = {
    "stores.csv": [
        "store_id",
        "year",
        "dep_time",
        "median_income",
        "conversion_rate",
        "sales_per_capita",
        "population",
        "unit_price",
    ],
    "visits_monthly.csv": ["bounce_rate"],
    "river_yearly.csv": ["year", "avg_temp"],
    "panel_year_month.csv": ["year", "month", "day", "open_time", "price"],
}
#: file -> pairs (a, b) where one is derived from the other: never a correlation.
DERIVED: dict[str, list[tuple[str, str]]] = {
    "stores.csv": [("revenue", "qty"), ("revenue", "unit_price"), ("revenue", "revenue_share")],
}


def stores(rng: np.random.Generator, rows: int = 2_000) -> pd.DataFrame:
    """One row per sale; North charges more; the product Widget carries most of the revenue."""
    regions = np.array(["North", "South", "East", "West", "Central"])
    region = regions[rng.integers(0, 5, rows)]
    products = np.array(["Widget", "Gadget", "Doohickey", "Gizmo", "Thing", "Bolt"])
    product = products[rng.choice(6, rows, p=[0.55, 0.09, 0.09, 0.09, 0.09, 0.09])]
    price = rng.normal(20.0, 2.0, rows) + np.where(region == "North", 8.0, 0.0)
    price = price + np.where(product == "Widget", 5.0, 0.0)
    qty = rng.integers(1, 10, rows) + np.where(product == "Widget", 12, 0)
    revenue = np.round(price, 2) * qty
    hours = rng.integers(5, 23, rows)
    return pd.DataFrame(
        {
            "store_id": rng.integers(1000, 9999, rows),
            "year": rng.integers(2015, 2024, rows),
            "dep_time": hours * 100 + rng.integers(0, 60, rows),
            "region": region,
            "product": product,
            "unit_price": np.round(price, 2),
            "qty": qty,
            "revenue": np.round(revenue, 2),
            "revenue_share": np.round(100 * revenue / revenue.sum(), 8),
            "median_income": np.round(rng.normal(52_000, 4_000, rows), 0),
            "conversion_rate": np.round(rng.uniform(0.01, 0.2, rows), 4),
            "sales_per_capita": np.round(rng.gamma(3.0, 40.0, rows), 2),
            "population": rng.integers(20_000, 900_000, rows),
        }
    )


def visits_monthly(rng: np.random.Generator) -> pd.DataFrame:
    """Ten years of monthly visits (one row a month, periods as '2010-01'), peaking in July."""
    months = pd.period_range("2010-01", "2019-12", freq="M")
    position = np.arange(months.shape[0]) % 12
    season = 1.0 + 0.35 * np.cos(2 * np.pi * (position - 6) / 12)
    level = np.linspace(1_000, 1_600, months.shape[0])
    visits = np.round(level * season + rng.normal(0, 25, months.shape[0]), 0)
    return pd.DataFrame(
        {
            "month": months.strftime("%Y-%m"),
            "visits": visits,
            "bounce_rate": np.round(rng.uniform(0.3, 0.5, months.shape[0]), 3),
        }
    )


def river_yearly(rng: np.random.Generator) -> pd.DataFrame:
    """A yearly flow (integer year column) that drops to a lower level from 1980 on."""
    years = np.arange(1930, 2021)
    flow = np.where(years < 1980, 1_100.0, 820.0) + rng.normal(0, 60, years.shape[0])
    return pd.DataFrame(
        {
            "year": years,
            "flow": np.round(flow, 1),
            "avg_temp": np.round(rng.normal(21.0, 0.8, years.shape[0]), 2),
        }
    )


def panel_year_month(rng: np.random.Generator) -> pd.DataFrame:
    """Daily rows per region over four years in year / month / day columns; December peaks."""
    days = pd.date_range("2019-01-01", "2022-12-31", freq="D")
    regions = ["Alpha", "Beta", "Gamma"]
    frame = pd.DataFrame(
        [(day, region) for day in days for region in regions], columns=["date", "region"]
    )
    month = frame["date"].dt.month.to_numpy()
    boost = np.where(month == 12, 2.2, np.where(month == 11, 1.5, 1.0))
    units = rng.poisson(40 * boost)
    frame = pd.DataFrame(
        {
            "year": frame["date"].dt.year,
            "month": month,
            "day": frame["date"].dt.day,
            "open_time": rng.choice([800, 830, 900, 930], frame.shape[0]),
            "region": frame["region"],
            "units_sold": units,
            "price": np.round(rng.normal(9.5, 0.5, frame.shape[0]), 2),
        }
    )
    return frame


def generate(directory: Path) -> dict[str, Path]:
    """Write every corpus file into ``directory``; returns file name -> path."""
    rng = np.random.default_rng(SEED)
    frames = {
        "stores.csv": stores(rng),
        "visits_monthly.csv": visits_monthly(rng),
        "river_yearly.csv": river_yearly(rng),
        "panel_year_month.csv": panel_year_month(rng),
    }
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, frame in frames.items():
        paths[name] = directory / name
        frame.to_csv(paths[name], index=False)
    return paths


if __name__ == "__main__":
    for written in generate(Path(sys.argv[1] if len(sys.argv) > 1 else "corpus")).values():
        sys.stdout.write(f"{written}\n")
