"""Fuzzing every reader: random bytes and mutated valid files end in a report or InvalidInput.

Never another exception: every refusal carries a job error code of the catalogue (invalid_input
or analysis_limit_exceeded) and a message. The example count is small for `make test`;
`READER_FUZZ_EXAMPLES=2000` runs a larger campaign.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from pathlib import Path

import openpyxl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analysis_svc.engine.analyze import analyze
from analysis_svc.engine.readers.common import InvalidInput
from datapilot_runtime.error_codes import CATALOGUE

EXAMPLES = int(os.environ.get("READER_FUZZ_EXAMPLES", "15"))
# pytest-timeout counts every example of a test: a larger campaign gets a longer budget.
pytestmark = pytest.mark.timeout(max(120, EXAMPLES // 2))
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    derandomize=EXAMPLES <= 15,  # the short run is the same on every machine
)
SALES = (Path(__file__).resolve().parents[1] / "data" / "sales.csv").read_bytes()


def _xlsx() -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    assert sheet is not None
    sheet.append(["Report", None, None])
    sheet.append(["region", "units", "revenue"])
    for n in range(30):
        sheet.append([("North", "South", "East")[n % 3], n, n * 2.5])
    sheet.merge_cells("A1:C1")
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


def _parquet() -> bytes:
    table = pa.table(
        {
            "region": ["North", "South", "East"] * 10,
            "units": list(range(30)),
            "nested": [{"a": n, "b": [n, n + 1]} for n in range(30)],
        }
    )
    buffer = io.BytesIO()
    pq.write_table(table, buffer, row_group_size=10)
    return buffer.getvalue()


SEEDS = {
    "csv": SALES[: SALES.rindex(b"\n", 0, 3000) + 1],
    "json": json.dumps(
        [{"region": r, "units": n, "tags": [n]} for n, r in enumerate(["N", "S", "E"] * 10)]
    ).encode(),
    "jsonl": b"".join(
        json.dumps({"region": r, "units": n}).encode() + b"\n"
        for n, r in enumerate(["N", "S", "E"] * 10)
    ),
    "xlsx": _xlsx(),
    "parquet": _parquet(),
}


def _outcome(path: Path, content: bytes) -> None:
    """Analyse `content`: a report, or a refusal with a job code and a message; nothing else."""
    path.write_bytes(content)
    try:
        report, charts = analyze(path, path.name)
    except InvalidInput as exc:
        assert CATALOGUE[exc.code].job, exc.code
        assert str(exc)
        return
    assert report["dataset"]["rows"] >= 1
    json.dumps(report)  # the report is JSON as it leaves the child
    json.dumps(charts)


@st.composite
def _mutated(draw: st.DrawFn, seed: bytes) -> bytes:
    data = bytearray(seed)
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["flip", "insert", "delete", "truncate", "repeat"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[at] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=64))
        elif kind == "delete":
            del data[at : at + draw(st.integers(1, 64))]
        elif kind == "truncate":
            del data[at:]
        elif kind == "repeat":
            data[at:at] = bytes(data[at : at + draw(st.integers(1, 32))]) * draw(st.integers(2, 50))
    return bytes(data)


@st.composite
def _mutated_xlsx(draw: st.DrawFn) -> bytes:
    """An XLSX whose member XML (not its zip framing) is mutated: the readers see damaged XML."""
    source = zipfile.ZipFile(io.BytesIO(SEEDS["xlsx"]))
    target = draw(st.sampled_from([n for n in source.namelist() if n.endswith(".xml")]))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as out:
        for name in source.namelist():
            data = source.read(name)
            out.writestr(name, draw(_mutated(data)) if name == target else data)
    return buffer.getvalue()


@FUZZ
@given(content=st.binary(max_size=4096))
def test_random_bytes(tmp_path: Path, content: bytes) -> None:
    _outcome(tmp_path / "random.bin", content)


MAGICS = [b"PK\x03\x04", b"PAR1", b"[", b"{", b"\xef\xbb\xbf", b"\xff\xfe"]


@FUZZ
@given(prefix=st.sampled_from(MAGICS), rest=st.binary(max_size=2048))
def test_random_bytes_behind_each_format_magic(tmp_path: Path, prefix: bytes, rest: bytes) -> None:
    _outcome(tmp_path / "magic.bin", prefix + rest)


@pytest.mark.parametrize("kind", sorted(SEEDS))
@FUZZ
@given(data=st.data())
def test_mutated_valid_files(tmp_path: Path, kind: str, data: st.DataObject) -> None:
    _outcome(tmp_path / f"mutated.{kind}", data.draw(_mutated(SEEDS[kind])))


@FUZZ
@given(content=_mutated_xlsx())
def test_mutated_xlsx_members(tmp_path: Path, content: bytes) -> None:
    _outcome(tmp_path / "members.xlsx", content)


@pytest.mark.parametrize("kind", sorted(SEEDS))
def test_seeds_complete(tmp_path: Path, kind: str) -> None:
    path = tmp_path / f"seed.{kind}"
    path.write_bytes(SEEDS[kind])
    report, _charts = analyze(path, path.name)
    assert report["dataset"]["rows"] == 30 or kind == "csv"


def test_found_by_fuzzing_lone_carriage_return_in_a_ragged_csv(tmp_path: Path) -> None:
    content = SEEDS["csv"].replace(b"\n2", b"\n2\r", 1) + b"1,2\n" * 40
    _outcome(tmp_path / "cr.csv", content)


def test_found_by_fuzzing_invalid_utf8_in_a_parquet_string_column(tmp_path: Path) -> None:
    content = SEEDS["parquet"].replace(b"North", b"\x80orth", 1)
    assert content != SEEDS["parquet"]
    path = tmp_path / "bad.parquet"
    path.write_bytes(content)
    with pytest.raises(InvalidInput, match="Parquet file could not be read"):
        analyze(path, path.name)
