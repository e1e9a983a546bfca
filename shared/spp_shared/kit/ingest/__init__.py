"""The bulk-ingest pipeline every service's import is built on.

A service keeps only its row mapping and its domain rules; this package
holds the rest, in reading order:

- :mod:`.formats`: how the body carries the file (media type, multipart part);
- :mod:`.body`: spooling the streamed body (raw or its ``file`` part) to disk;
- :mod:`.records`: reading records (CSV ``,``/``;`` with or without BOM,
  NDJSON), each bounded before it is parsed;
- :mod:`.pipeline`: mapping records in batches, a write overlapping the next batch;
- :mod:`.report`: the row-level report (counts, capped issue lists);
- :mod:`.write`: the one bulk insert (COPY on PostgreSQL, executemany on SQLite).
"""

from spp_shared.kit.ingest.body import Upload, spooled_body
from spp_shared.kit.ingest.formats import Container, path_container
from spp_shared.kit.ingest.pipeline import DEFAULT_BATCH, Batch, Overlap, mapped_batches
from spp_shared.kit.ingest.records import FileProblem, RowError, Source, open_source
from spp_shared.kit.ingest.report import MAX_ISSUES, ReportBuilder
from spp_shared.kit.ingest.write import analyze, insert_rows

__all__ = [
    "DEFAULT_BATCH",
    "MAX_ISSUES",
    "Batch",
    "Container",
    "FileProblem",
    "Overlap",
    "ReportBuilder",
    "RowError",
    "Source",
    "Upload",
    "analyze",
    "insert_rows",
    "mapped_batches",
    "open_source",
    "path_container",
    "spooled_body",
]
