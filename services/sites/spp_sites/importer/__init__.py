"""Streaming bulk import of sites (CSV, NDJSON, the programme's exports).

Public face: :func:`import_file` (a file on disk, used by the demo seeding
and the benchmark) and :func:`run_import_request` in :mod:`.http` (the
``POST /v1/sites/import`` endpoint). The modules hold, in reading order:

- :mod:`.body`: spooling the request body (raw or multipart) to a temp file;
- :mod:`.formats`: which format a file is (media type, header row);
- :mod:`.fields`: cheap per-value checks shared by the row mappers;
- :mod:`.rows`: reading records and mapping each format to site columns;
- :mod:`.networks`: network names of the exports to network codes;
- :mod:`.writer`: the SQL (batch look-up, bulk insert and update);
- :mod:`.staging`: the keys seen so far, in a temporary table (duplicates);
- :mod:`.report`: counts and capped issue lists;
- :mod:`.engine`: the transaction that ties them together.
"""

from spp_sites.importer.engine import import_file, run_import
from spp_sites.importer.formats import Format

__all__ = ["Format", "import_file", "run_import"]
