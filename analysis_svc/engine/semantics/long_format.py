"""A long table (one row per key x variable, its number in one "value" column) made wide.

Public data often comes long: date, variable (pce, pop, unemploy ...), value. Analysed as it
is, "value" mixes quantities and every figure across them is nonsense; made wide, each variable
is a measure of its own with its trend, season and correlations. A table is widened only when
one label column is named like a kind of quantity (mixed_scales.LONG_FORMAT_WORDS) with 2-50
labels, one numeric column is named like a bare value, and the remaining columns with that
label column identify every row. Row numbers, columns that only describe a variable (an
indicator's code or unit: one value per label) and further value-named columns are dropped, and
the report says so (`dataset.reshapedFrom`).
"""

from __future__ import annotations

import dataclasses

import pandas as pd

from analysis_svc.engine.column_profile import name_tokens
from analysis_svc.engine.readers.common import MAX_COLUMNS, Reshape, Table, unique_names
from analysis_svc.engine.semantics.mixed_scales import LONG_FORMAT_WORDS, VALUE_WORDS

MIN_VARIABLES = 2
MAX_VARIABLES = 50


def widen(table: Table) -> Table:
    """``table`` made wide when it is long (see the module's rule), else ``table`` itself."""
    frame = table.frame
    names = [str(name) for name in frame.columns]
    if len(set(names)) != len(names) or frame.shape[0] == 0:
        return table
    numeric = {name for name in names if pd.api.types.is_numeric_dtype(frame[name].dtype)}
    kinds = [n for n in names if n not in numeric and set(name_tokens(n)) & LONG_FORMAT_WORDS]
    values = [n for n in names if n in numeric and set(name_tokens(n)) & VALUE_WORDS]
    if len(kinds) != 1 or not values:
        return table
    kind = kinds[0]
    labels = frame[kind]
    if bool(labels.isna().any()) or not MIN_VARIABLES <= labels.nunique() <= MAX_VARIABLES:
        return table
    # The value column named exactly like a value ("value" before "value01"), else the first.
    value = min(values, key=lambda n: (len(name_tokens(n)) > 1, names.index(n)))
    others = [n for n in names if n not in (kind, value)]
    rows = int(frame.shape[0])
    # A row number (unique per row) would keep every long row apart: it is no key.
    numbering = [n for n in others if n not in values and frame[n].nunique() == rows]
    describing = [
        n for n in others if n not in values and n not in numbering and _describes(frame, kind, n)
    ]
    keys = [n for n in others if n not in values and n not in describing and n not in numbering]
    if not keys or bool(frame.duplicated(subset=[*keys, kind]).any()):
        return table
    if len(keys) + labels.nunique() > MAX_COLUMNS:
        return table
    wide = frame.pivot(index=keys, columns=kind, values=value)
    variables = [str(label) for label in wide.columns]
    wide = wide.reset_index()
    wide.columns = unique_names([*keys, *variables])
    dropped = tuple(n for n in others if n not in keys)
    reshape = Reshape(int(frame.shape[0]), int(frame.shape[1]), kind, value, dropped)
    return dataclasses.replace(table, frame=wide, reshaped_from=reshape)


def _describes(frame: pd.DataFrame, kind: str, column: str) -> bool:
    """Whether ``column`` holds one value per label of ``kind`` (an attribute of the variable)."""
    counts = frame.groupby(kind, sort=False, observed=True)[column].nunique(dropna=False)
    return bool((counts <= 1).all()) and frame[column].nunique(dropna=False) > 1
