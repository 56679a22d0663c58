"""The offline store's intake: what the stream saw, as day-partitioned Parquet.

- :mod:`.layout`: the directories and parts on disk, and what an archive holds;
- :mod:`.archiver`: the live archiver, from Kafka (the one module that needs a client);
- :mod:`.backfill`: a labelled history written into an archive;
- :mod:`.reader`: payments with their latest verdicts, for training.
"""

from feature_store.archive.backfill import Backfill, backfill_archive, seed_archive
from feature_store.archive.layout import (
    archive_day_rows,
    archive_first_day,
    archive_last_day,
    archive_last_event_ms,
    first_day_within,
    is_archive,
)
from feature_store.archive.reader import read_archive

__all__ = [
    "Backfill",
    "archive_day_rows",
    "archive_first_day",
    "archive_last_day",
    "archive_last_event_ms",
    "backfill_archive",
    "first_day_within",
    "is_archive",
    "read_archive",
    "seed_archive",
]
