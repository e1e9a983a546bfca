"""Streaming bulk import of sites (CSV, NDJSON, the programme's exports).

The generic parts (spooling the body, telling CSV from NDJSON, reading
bounded records in batches, the report, the bulk insert) are the kit's
(:mod:`spp_shared.kit.ingest`); this package holds the sites rules.

Public face: :func:`import_file` (a file on disk, used by the demo seeding
and the benchmark) and :func:`run_import_request` in :mod:`.http` (the
``POST /v1/sites/import`` endpoint). The modules hold, in reading order:

- :mod:`.formats`: which sites format a CSV file is (its header row);
- :mod:`.fields`: cheap per-value checks shared by the row mappers;
- :mod:`.rows`: mapping each format's records to site columns;
- :mod:`.networks`: network names of the exports to network codes;
- :mod:`.writer`: the SQL (batch look-up, bulk insert and update);
- :mod:`.staging`: the keys seen so far, in a temporary table (duplicates);
- :mod:`.engine`: the transaction that ties them together.
"""

from spp_sites.importer.engine import import_file, run_import
from spp_sites.importer.formats import Format

__all__ = ["Format", "import_file", "run_import"]
