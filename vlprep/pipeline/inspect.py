"""What a store holds: tables, rows, schemas, progress, and errors by stage."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from vlprep.store import INDEX, INPUTS, RECIPE_FILE, CommittedStore, Store, StoreError


def inspect_store(uri: str) -> dict[str, Any]:
    """A JSON-ready summary; raises StoreError when `uri` is not a readable vlprep store."""
    store = Store(uri)
    try:
        if not store.exists():
            raise StoreError(f"store {uri}: no such directory")
        index_path = store.path(INPUTS, INDEX)
        if store.fs.get_file_info(index_path).type.name != "File":
            raise StoreError(f"store {uri}: not a vlprep store (no {INPUTS}/{INDEX})")
        index = json.loads(store.read_bytes(index_path))
        data = CommittedStore(store)
        tables = {name: _table_summary(data, name) for name in data.tables()}
        commits = [c for c in data.commits if c.unit.startswith("part-")]  # first pass
        errors_by_stage: Counter = Counter()
        if "errors" in tables:
            errors_by_stage.update(data.read("errors", ["stage"]).column("stage").to_pylist())
    except (OSError, ValueError) as e:
        raise StoreError(f"store {uri}: unreadable ({e})") from None
    return {
        "store": uri,
        "tables": tables,
        "stages": _stage_flow(store, sum(c.videos for c in commits), errors_by_stage),
        "errors_by_stage": dict(sorted(errors_by_stage.items())),
        "partitions": {"committed": len(commits), "total": len(index["sizes"])},
        "videos": {"total": index["videos"], "done": sum(c.videos for c in commits)},
    }


def _stage_flow(store: Store, videos: int, errors: Counter) -> list[dict[str, Any]]:
    """Per stage, in = ok + errors: every video that enters a stage leaves it as one of the
    two, and only the ok ones enter the next stage (each pass starts with all videos)."""
    path = store.path(RECIPE_FILE)
    if store.fs.get_file_info(path).type.name != "File":
        return []
    flow, entering = [], videos
    for stage in json.loads(store.read_bytes(path))["stages"]:
        if stage.get("aggregate"):
            entering = videos
            continue
        failed = errors.get(stage["name"], 0)
        flow.append({"stage": stage["name"], "in": entering, "ok": entering - failed,
                     "errors": failed})
        entering -= failed
    return flow


def table_recipes(uri: str) -> dict[str, Any]:
    """The recipe recorded in each table's Parquet metadata, and the store's own record."""
    data = CommittedStore(uri, must_exist=False)
    out: dict[str, Any] = {}
    recipe = data.read_json(RECIPE_FILE)
    if recipe is not None:
        out["_store"] = recipe
    for name in data.tables():
        meta = data.schema(name).metadata or {}
        raw = meta.get(b"vlprep.recipe")
        out[name] = {
            "schema_version": meta.get(b"vlprep.schema_version", b"").decode(),
            "vlprep_version": meta.get(b"vlprep.version", b"").decode(),
            "recipe": json.loads(raw) if raw else None,
        }
    return out


def _table_summary(data: CommittedStore, name: str) -> dict[str, Any]:
    files = data.files(name)
    rows, size, schema = data.count_rows(name), data.bytes(name), data.schema(name)
    columns = schema.names if schema is not None else []
    version = (schema.metadata or {}).get(b"vlprep.schema_version", b"").decode() if schema else ""
    return {
        "rows": rows,
        "columns": columns,
        "schema": {f.name: str(f.type) for f in schema} if schema is not None else {},
        "schema_version": version,
        "files": len(files),
        "bytes": size,
    }


def render(summary: dict[str, Any]) -> None:
    """Print the summary as tables (rich)."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    parts, videos = summary["partitions"], summary["videos"]
    console.print(f"[bold]store[/] {summary['store']}  videos {videos['done']}/{videos['total']}"
                  f"  partitions committed {parts['committed']}/{parts['total']}")
    table = Table("table", "rows", "files", "MiB", "columns")
    for name, t in summary["tables"].items():
        cols = ", ".join(f"{c}:{t['schema'][c]}" for c in t["columns"])
        table.add_row(name, str(t["rows"]), str(t["files"]), f"{t['bytes'] / 2**20:.2f}", cols)
    console.print(table)
    if summary.get("stages"):
        console.print("videos per stage: " + ", ".join(
            f"{s['stage']} {s['in']} in = {s['ok']} ok + {s['errors']} errors"
            for s in summary["stages"]))
    errors = summary["errors_by_stage"]
    console.print("errors by stage: " + (", ".join(f"{k}={v}" for k, v in errors.items())
                                         if errors else "none"))
