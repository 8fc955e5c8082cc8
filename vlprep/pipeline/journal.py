"""Survive videos that kill their worker process (a decoder segfault, an OOM kill).

Ray restarts a dead worker and retries its batch, forever for actors. Before a batch runs, a
small journal entry names its videos; it is removed when the batch is done. Finding its own
entry at the start means an earlier attempt died: the batch then runs one video at a time,
each with its own entry, and a video whose lone attempt already died (so it has killed a
worker twice) becomes an `errors` row instead of killing the worker again. Entries live
under ``STORE/_tmp/inflight/`` (cleared when a run starts), so every node of a cluster sees
them.
"""

from __future__ import annotations

import hashlib
import json

from vlprep.failpoints import failpoint
from vlprep.pipeline.guard import run_guarded
from vlprep.stages.base import Record, Stage
from vlprep.stages.record import fail, failed
from vlprep.store import TMP, Store

CRASH_REASON = "the stage's worker process died while processing this video"


class Journal:
    def __init__(self, store_uri: str, stage_name: str):
        self.store = Store(store_uri)
        self.dir = self.store.path(TMP, "inflight", stage_name)

    def _path(self, ids: list[str], lone: bool) -> str:
        key = hashlib.sha1(("lone\0" if lone else "batch\0").encode()
                           + "\0".join(sorted(ids)).encode()).hexdigest()
        return f"{self.dir}/{key}.json"

    def begin(self, ids: list[str], lone: bool = False) -> int:
        """Record an attempt at these videos (a batch, or one video `lone`ly after its batch
        died); returns how many earlier such attempts died."""
        path = self._path(ids, lone)
        earlier = 0
        if self.store.fs.get_file_info(path).type.name == "File":
            earlier = json.loads(self.store.read_bytes(path))["attempts"]
        self.store.write_atomic(path, json.dumps({"ids": ids, "attempts": earlier + 1}).encode())
        return earlier

    def end(self, ids: list[str], lone: bool = False) -> None:
        path = self._path(ids, lone)
        if self.store.fs.get_file_info(path).type.name == "File":
            self.store.fs.delete_file(path)


def run_journaled(stage: Stage, records: list[Record], journal: Journal | None) -> list[Record]:
    """`run_guarded`, made safe against videos that crash the process."""
    live = [r for r in records if not failed(r)]
    if journal is None or not live:
        _run(stage, live)
        return records
    ids = [r["video_id"] for r in live]
    if journal.begin(ids) == 0:
        _run(stage, live)
    else:  # an earlier attempt of this batch died: one video at a time, to find the culprit
        for record in live:
            one = [record["video_id"]]
            if journal.begin(one, lone=True) > 0:  # it was alone in flight when one died
                fail(record, stage.name, CRASH_REASON)
            else:
                _run(stage, [record])
            journal.end(one, lone=True)
    journal.end(ids)
    return records


def _run(stage: Stage, live: list[Record]) -> None:
    """Process live records; `video:ID` failpoints fire here, inside the journaled attempt,
    where a real decoder crash would happen."""
    for record in live:
        failpoint(f"video:{record['video_id']}")
    if live:
        run_guarded(stage, live)
