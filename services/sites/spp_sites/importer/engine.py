"""The import as one transaction: read, validate, look up, write, link parents.

Rows are read from the spooled file and handled in batches (one look-up
query, one bulk insert, one bulk update per batch), so memory stays bounded
by the batch size whatever the file size. The keys seen so far, to refuse a
key given twice in one file, are kept in a temporary table (:mod:`.staging`),
not in the process.

Modes: by default the import is atomic (one rejected row: nothing is kept,
and writing stops at the first rejection while validation goes on to list
every rejected row); ``keep_valid`` commits the valid rows; ``dry_run``
validates and looks up without writing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from sqlalchemy.exc import IntegrityError

from spp_shared.contracts.sites import ImportReport, SitesAction
from spp_shared.kit.db import Database, WriteSession
from spp_shared.kit.errors import Conflict
from spp_shared.kit.identity import Principal
from spp_shared.kit.ids import new_ulid
from spp_shared.kit.ingest import (
    DEFAULT_BATCH,
    MAX_ISSUES,
    Container,
    Overlap,
    ReportBuilder,
    RowError,
    Source,
    mapped_batches,
    open_source,
    path_container,
)
from spp_shared.kit.permissions import Access, authorize
from spp_sites import repository as repo
from spp_sites.importer import staging, writer
from spp_sites.importer.fields import visible_name
from spp_sites.importer.formats import Format
from spp_sites.importer.networks import NetworkResolver
from spp_sites.importer.rows import (
    NDJSON_KEYS,
    MapContext,
    Mapper,
    OwnMapper,
    Row,
    detect_csv,
    mapper_for,
)
from spp_sites.importer.tree import BatchTree
from spp_sites.permissions import may_create_networks, refusal, refused_fields
from spp_sites.values import CONTENT_FIELDS, finish

NETWORK_FORMATS: Final = frozenset({Format.sp_plus_export, Format.france_services})
DEFAULTS: Final[dict[str, Any]] = {f: None for f in CONTENT_FIELDS} | {
    "country": "France",
    "status": "open",
    "level": "site",
}


class ConcurrentImport(Conflict):
    type_ = "concurrent-import"
    title = "The import met a concurrent write"


def _format_of(source: Source) -> Format:
    return Format.ndjson if source.container is Container.ndjson else detect_csv(source.header)


class _Import:
    def __init__(
        self,
        session: Any,
        mapper: Mapper,
        report: ReportBuilder,
        *,
        access: Access,
        write: bool,
        keep_valid: bool,
        batch_size: int = DEFAULT_BATCH,
    ) -> None:
        self.session = session
        self.access = access
        self.tree = BatchTree({})
        # This batch's sites that changed network: their children may have to go.
        self.moved: list[str] = []
        self.mapper = mapper
        self.report = report
        self.write = write
        self.keep_valid = keep_valid
        self.stamp = datetime.now(UTC)
        # This batch's keys only: the lines of earlier batches that had them
        # (from the staging table), then the rows of this batch that take them.
        self.seen_keys: dict[tuple[str, str], int] = {}
        self.seen_sp: dict[str, int] = {}
        self.wrote = False
        self.networks_created: list[str] = []
        self.writing = Overlap()
        # Sites inserted so far, and how many before their statistics are
        # taken (once; see _analyze).
        self.inserted = 0
        self.analyze_sites_at: int | None = batch_size

    async def _analyze(self) -> None:
        """Statistics of ``sites`` once this import has added a full batch to
        it, so the next batches' look-ups are planned for a table of these
        networks (probes of the unique key) and not for an empty one (ADR 0020)."""
        if self.analyze_sites_at is not None and self.inserted >= self.analyze_sites_at:
            self.analyze_sites_at = None
            await writer.analyze_sites(self.session)

    def reject(self, line: int, field: str | None, reason: str) -> None:
        self.report.reject(line, field, reason)
        if not self.keep_valid:
            self.write = False  # atomic: nothing of this import will be kept

    # -- one batch -------------------------------------------------------------

    async def batch(self, rows: list[Row]) -> None:
        """Look up and plan ``rows``, then start writing them.

        The write runs while the caller maps the next rows (the database
        works in its own thread or server meanwhile); the next batch, or the
        end of the import, settles it before touching the session again.
        """
        await self.writing.settle()
        await self._analyze()
        planned = self.mapper.ctx.resolver.take_pending()
        self.networks_created.extend(p.code for p in planned)
        if planned and self.write:
            await writer.insert_networks(self.session, planned, self.stamp)
        by_sp_code = self.mapper.key_by_sp_code
        keys: list[tuple[str, str]] = []
        sp_codes: list[str] = []
        for row in rows:
            v = row.values
            net = v["network_code"]
            if by_sp_code:
                keys.append((net, v["sp_code"]))
                if row.identifier:
                    keys.append((net, row.identifier))
            else:
                keys.append((net, v["external_code"]))
            if v.get("sp_code"):
                sp_codes.append(v["sp_code"])
        found = await writer.existing_sites(self.session, keys, sp_codes)
        self.tree = await BatchTree.load(self.session, [r.values for r in rows], found)
        earlier = await staging.lines(
            self.session, [*keys, *((staging.SP_CODE, c) for c in sp_codes)]
        )
        self.seen_keys = {k: n for k, n in earlier.items() if k[0] != staging.SP_CODE}
        self.seen_sp = {k[1]: n for k, n in earlier.items() if k[0] == staging.SP_CODE}
        self.moved = []
        by_key = {(s["network_code"], s["external_code"]): s for s in found}
        by_sp = {s["sp_code"]: s for s in found if s["sp_code"]}
        inserts: list[dict[str, Any]] = []
        updates: list[dict[str, Any]] = []
        for row in rows:
            try:
                existing = (
                    self._match_sp(row, by_key, by_sp)
                    if by_sp_code
                    else self._match_key(row, by_key, by_sp)
                )
                self._plan(row, existing, inserts, updates)
            except RowError as exc:
                self.reject(row.line, exc.field, exc.reason)
        taken = self.seen_keys | {(staging.SP_CODE, c): n for c, n in self.seen_sp.items()}
        if self.write:
            self.wrote = self.wrote or bool(inserts or updates or planned)
        else:
            inserts, updates, self.moved = [], [], []
        self.inserted += len(inserts)
        await self.writing.start(self._write(taken, inserts, updates, self.moved))

    async def _write(
        self,
        taken: dict[tuple[str, str], int],
        inserts: list[dict[str, Any]],
        updates: list[dict[str, Any]],
        moved: list[str],
    ) -> None:
        await staging.add(self.session, taken)
        await writer.insert_sites(self.session, inserts)
        await writer.update_sites(self.session, updates)
        # Per batch, so nothing the size of the file is kept (ADR 0017).
        await repo.unlink_foreign_children(self.session, moved)

    def _match_key(
        self, row: Row, by_key: dict[tuple[str, str], Any], by_sp: dict[str, Any]
    ) -> dict[str, Any] | None:
        v = row.values
        key = (v["network_code"], v["external_code"])
        if key in self.seen_keys:
            raise RowError(
                "external_code",
                f"duplicate: line {self.seen_keys[key]} has the same network and external code",
            )
        existing = by_key.get(key)
        sp = v.get("sp_code")
        if sp:
            if sp in self.seen_sp:
                raise RowError("sp_code", f"duplicate: line {self.seen_sp[sp]} has this SP+ code")
            other = by_sp.get(sp)
            if other is not None and (existing is None or other["id"] != existing["id"]):
                raise RowError(
                    "sp_code",
                    f"the SP+ code belongs to another site "
                    f"({other['network_code']}:{other['external_code']})",
                )
        return existing

    def _match_sp(
        self, row: Row, by_key: dict[tuple[str, str], Any], by_sp: dict[str, Any]
    ) -> dict[str, Any] | None:
        """SP+ export: the key is the SP+ code; the identifier is the wanted external code."""
        v = row.values
        code, net = v["sp_code"], v["network_code"]
        if code in self.seen_sp:
            raise RowError("sp_code", f"duplicate: line {self.seen_sp[code]} has this SP+ code")
        existing = by_sp.get(code)
        ext = row.identifier or code
        if row.identifier:
            owner = by_key.get((net, ext))
            earlier = self.seen_keys.get((net, ext))
            if earlier is None and existing is None and owner is not None and not owner["sp_code"]:
                existing = owner  # a site created by our own format: the export adopts it
            elif earlier is not None or (
                owner is not None and (existing is None or owner["id"] != existing["id"])
            ):
                where = f"line {earlier}" if earlier is not None else "another site"
                row.warnings.append(
                    (
                        "external_code",
                        f"identifier '{ext}' is already used by {where} of network {net}: "
                        "the SP+ code is the external code",
                    )
                )
                ext = code
        if ext == code:
            owner = by_key.get((net, code))
            earlier = self.seen_keys.get((net, code))
            if earlier is not None or (
                owner is not None and (existing is None or owner["id"] != existing["id"])
            ):
                raise RowError("external_code", f"'{code}' is already used in network {net}")
        if (
            existing is not None
            and existing["network_code"] != net
            and not self.access.reaches(network=existing["network_code"])
        ):
            raise RowError("network", "not your network: the site belongs to another network")
        v["external_code"] = ext
        return existing

    def _plan(
        self,
        row: Row,
        existing: dict[str, Any] | None,
        inserts: list[dict[str, Any]],
        updates: list[dict[str, Any]],
    ) -> None:
        v = row.values
        visible_name(v.get("name"))
        moved = existing is not None and existing["network_code"] != v["network_code"]
        if existing is None or moved:
            # A site that moves to another network keeps nothing of its old
            # owner that the new owner's row does not give (ADR 0016).
            if not v.get("name"):
                raise RowError("name", "required to create a site")
            merged = finish(DEFAULTS | v)
        else:
            base = {f: existing[f] for f in CONTENT_FIELDS}
            merged = finish(base | v)
        had = existing["sp_code"] if existing is not None else None
        if merged["sp_code"] != had and (refused := refused_fields(self.access, ["sp_code"])):
            raise RowError("sp_code", refusal(self.access, refused))
        self.tree.plan(merged, existing)
        if moved:
            assert existing is not None
            self.moved.append(existing["id"])
            old = existing["network_code"]
            row.warnings.append(
                (
                    "network",
                    f"the site {existing['id']} (SP+ code {existing['sp_code']}) moves from "
                    f"network '{old}' to '{merged['network_code']}': the fields this row "
                    f"does not give are reset, not kept from '{old}'",
                )
            )
        self.seen_keys[(merged["network_code"], merged["external_code"])] = row.line
        if merged["sp_code"]:
            self.seen_sp[merged["sp_code"]] = row.line
        for field_, reason in row.warnings:
            self.report.warn(row.line, field_, reason)
        if existing is None:
            self.report.created += 1
            merged.update(
                id=new_ulid(),
                parent_id=None,
                status_since=None,
                created_at=self.stamp,
                updated_at=self.stamp,
                version=1,
            )
            inserts.append(merged)
        elif merged["content_hash"] == existing["content_hash"]:
            self.report.unchanged += 1
        else:
            self.report.updated += 1
            same_parent = merged["parent_sp_code"] == existing["parent_sp_code"]
            same_status = merged["status"] == existing["status"]
            merged.update(
                id=existing["id"],
                parent_id=existing["parent_id"] if same_parent else None,
                status_since=existing["status_since"] if same_status else self.stamp.date(),
                status_reason=existing["status_reason"] if same_status else None,
                reopens_on=existing["reopens_on"] if same_status else None,
                updated_at=self.stamp,
                version=existing["version"],  # the version this update was planned on
            )
            updates.append(merged)


def _map(mapper: Mapper, fmt: Format, header: list[str], line: int, raw: Any) -> Row:
    if fmt is Format.ndjson:
        unknown = [k for k in raw if k not in NDJSON_KEYS]
        if unknown:
            raise RowError(unknown[0], "unknown field")
        assert isinstance(mapper, OwnMapper)
        return mapper.map(line, raw)
    if len(raw) != len(header):
        raise RowError(None, f"{len(raw)} fields where the header has {len(header)}")
    if isinstance(mapper, OwnMapper):
        return mapper.map(line, dict(zip(header, raw, strict=True)))
    return mapper.map(line, raw)  # type: ignore[attr-defined]


async def run_import(
    db: Database,
    path: Path,
    container: Container,
    principal: Principal,
    *,
    dry_run: bool = False,
    keep_valid: bool = False,
    batch_size: int = DEFAULT_BATCH,
    max_issues: int = MAX_ISSUES,
    before_commit: Callable[[WriteSession, ImportReport], Awaitable[None]] | None = None,
) -> ImportReport:
    """Import one spooled file in one transaction; see the module docstring.

    ``before_commit`` runs in that transaction with the report of an import
    that writes (a background import records its outcome there).
    """
    with ExitStack() as stack:
        source = open_source(path, container, stack)
        fmt = _format_of(source)
        report = ReportBuilder(fmt.value, dry_run=dry_run, max_issues=max_issues)
        async with db.sessionmaker() as session:
            job: _Import | None = None
            try:
                resolver = NetworkResolver.of(await repo.all_networks(session))
                ctx = MapContext(
                    resolver=resolver,
                    principal=principal,
                    may_create_networks=may_create_networks(principal) and fmt in NETWORK_FORMATS,
                )
                mapper = mapper_for(fmt, ctx, source.header)
                job = _Import(
                    session,
                    mapper,
                    report,
                    access=authorize(principal, SitesAction.sites_import),
                    write=not dry_run,
                    keep_valid=keep_valid,
                    batch_size=batch_size,
                )
                await staging.create(session)

                def map_record(line: int, raw: Any) -> Row:
                    return _map(mapper, fmt, source.header, line, raw)

                def on_error(line: int, exc: RowError) -> None:
                    assert job is not None
                    job.reject(line, exc.field, exc.reason)

                async for batch in mapped_batches(
                    source.records, map_record, on_error, batch_size=batch_size
                ):
                    report.rows += batch.records
                    await job.batch(batch.rows)
                await job.writing.settle()
                await staging.drop(session)
                extra = {"networks_created": job.networks_created}
                if job.write and job.wrote:
                    await repo.link_parents(session)
                    built = report.build(ImportReport, committed=True, **extra)
                    if before_commit is not None:
                        await before_commit(session, built)
                    await session.commit()
                    return built
                await session.rollback()
                return report.build(ImportReport, committed=False, **extra)
            except BaseException as exc:
                if job is not None:
                    await job.writing.abandon()
                await session.rollback()
                if isinstance(exc, IntegrityError | writer.StaleRows):
                    # Another import or a create wrote some of these sites
                    # between our look-up and our write; ours is rolled back.
                    raise ConcurrentImport(
                        "Another write created some of these sites while this import ran; "
                        "nothing of this import was kept. Send it again."
                    ) from None
                raise


async def import_file(
    db: Database,
    path: Path,
    principal: Principal,
    *,
    keep_valid: bool = False,
    dry_run: bool = False,
    batch_size: int = DEFAULT_BATCH,
) -> ImportReport:
    """Import a CSV or NDJSON file from disk (demo seeding, scripts, benchmarks)."""
    return await run_import(
        db,
        path,
        path_container(path),
        principal,
        dry_run=dry_run,
        keep_valid=keep_valid,
        batch_size=batch_size,
    )
