"""One record may not be large: refused while it is read, before it is parsed (issue 7).

ADR 0017 bounded an import's memory by its rows; a single 60 MB NDJSON line
still took the process to 2 GB, and a 40 MB CSV line of ``caf,caf,...``
(millions of fields) to 853 MB. A record is now read with a size limit and
its fields are counted before csv splits it; over either bound the whole
import is refused with a problem naming the line.
"""

from __future__ import annotations

import io
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from spp_shared.contracts.permissions import Role
from spp_shared.kit.db import Database
from spp_shared.kit.identity import Principal, PrincipalKind
from spp_shared.kit.ingest import Container, FileProblem
from spp_shared.kit.ingest.records import MAX_COLUMNS, MAX_RECORD_SIZE, CsvLines, csv_records
from spp_sites.importer import run_import
from tests.sites.test_import import NDJSON, PROBLEM, post_import
from tests.sites.test_import_robustness import MULTIPART, OWN_HEADER, PART_HEAD, lines

pytestmark = pytest.mark.anyio

CAF = Principal(
    subject="key-caf", kind=PrincipalKind.api_key, roles=[Role.network_manager], network="caf"
)
GOOD = ("caf,A1,Caf un", "caf,A2,Caf deux")


def junk_json(size: int) -> bytes:
    head = b'{"network":"caf","external_code":"H","name":"x","junk":['
    return head + b"[]," * (size // 3) + b"[]]}"


def many_fields(size: int) -> str:
    return "caf," * (size // 4) + "caf"


async def test_ndjson_line_over_the_limit_refuses_the_import(
    sites_client: httpx.AsyncClient, manager_headers: Callable[[str], dict[str, str]]
) -> None:
    body = b'{"network":"caf","external_code":"A1","name":"Caf un"}\n' + junk_json(3_000_000)
    resp = await post_import(
        sites_client, body + b"\n", manager_headers("caf"), content_type=NDJSON, dry_run="true"
    )
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == PROBLEM
    problem = resp.json()
    assert problem["type"].endswith("invalid-import-file")
    assert problem["errors"] == [
        {"line": 2, "reason": f"is longer, over the limit of {MAX_RECORD_SIZE} bytes"}
    ]
    assert "line 2" in problem["detail"]


@pytest.mark.parametrize("multipart", [False, True], ids=["csv", "multipart"])
async def test_csv_line_over_the_limit_refuses_the_import(
    sites_client: httpx.AsyncClient,
    manager_headers: Callable[[str], dict[str, str]],
    multipart: bool,
) -> None:
    body = lines(OWN_HEADER, *GOOD, many_fields(3_000_000))
    kind = {}
    if multipart:
        body, kind = PART_HEAD + body + b"\r\n--XyZ--\r\n", {"content_type": MULTIPART}
    resp = await post_import(sites_client, body, manager_headers("caf"), dry_run="true", **kind)  # type: ignore[arg-type]
    assert resp.status_code == 422, resp.text
    assert resp.headers["content-type"] == PROBLEM
    problem = resp.json()
    assert problem["errors"] == [
        {"line": 4, "reason": f"is longer, over the limit of {MAX_RECORD_SIZE} characters"}
    ]
    assert "line 4" in problem["detail"]


async def test_csv_record_with_too_many_fields_refuses_the_import(
    sites_client: httpx.AsyncClient, manager_headers: Callable[[str], dict[str, str]]
) -> None:
    body = lines(OWN_HEADER, *GOOD, "caf,A3,Caf trois" + "," * 5000)  # short, but 5,003 fields
    resp = await post_import(sites_client, body, manager_headers("caf"), dry_run="true")
    assert resp.status_code == 422, resp.text
    problem = resp.json()
    reason = f"has more fields, over the limit of {MAX_COLUMNS} fields (the widest layout)"
    assert problem["errors"] == [{"line": 4, "reason": reason}]


async def test_delimiters_inside_quotes_are_not_fields(
    sites_client: httpx.AsyncClient, manager_headers: Callable[[str], dict[str, str]]
) -> None:
    name = "Caf" + ", a" * 90  # 273 characters, 90 commas: one field
    body = lines(OWN_HEADER, *GOOD, f'caf,A3,"{name}"', *(f'caf,B{i},"{name}"' for i in range(3)))
    resp = await post_import(sites_client, body, manager_headers("caf"), dry_run="true")
    assert resp.status_code == 200, resp.text
    assert (resp.json()["rows"], resp.json()["rejected"]) == (6, 0)


def test_fields_are_counted_outside_quotes_across_lines() -> None:
    inner = "x;" * 250  # 250 delimiters a line inside quotes, on 3 lines
    text = f'a;b;c\n1;"{inner}\n{inner}\n{inner}";3\n4;5;6\n'
    header, records = csv_records(CsvLines(io.StringIO(text, newline=""), RuntimeError))
    assert header == ["a", "b", "c"]
    assert [(n, len(cells)) for n, cells in records] == [(2, 3), (5, 3)]
    # The same record with its fields unquoted is refused, naming where it starts.
    bad = text.replace('"', "")
    _, records = csv_records(CsvLines(io.StringIO(bad, newline=""), RuntimeError))
    with pytest.raises(FileProblem) as caught:
        list(records)
    assert caught.value.errors[0]["line"] == 2  # type: ignore[index]


SIZE = 20 * 1024 * 1024
# The peak a refused import may reach: its first MiB, the database's
# statements, the reading buffers; far below the 20 MB line itself.
BUDGET = 8 * 1024 * 1024


@pytest.mark.parametrize(
    ("container", "content"),
    [
        (Container.ndjson, lambda: junk_json(SIZE) + b"\n"),
        (Container.csv, lambda: lines(OWN_HEADER, many_fields(SIZE))),
        (Container.csv, lambda: lines(OWN_HEADER, "," * SIZE)),
    ],
    ids=["ndjson-junk", "csv-fields", "csv-commas"],
)
async def test_a_huge_record_is_refused_in_bounded_memory(
    db: Database, tmp_path: Path, container: Container, content: Callable[[], bytes]
) -> None:
    path = tmp_path / "huge"
    path.write_bytes(content())
    tracemalloc.start()
    try:
        with pytest.raises(FileProblem) as caught:
            await run_import(db, path, container, CAF, dry_run=True)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.errors[0]["line"] == (1 if container is Container.ndjson else 2)  # type: ignore[index]
    assert peak < BUDGET, f"peak {peak / 1e6:.1f} MB for a {SIZE / 1e6:.0f} MB record"
