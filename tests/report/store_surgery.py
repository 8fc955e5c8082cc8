"""Copies of a real store with chosen damage: NaN / zero embeddings, lost rows, an errors row,
uncommitted partitions, missing tables. Files keep their names and schema metadata."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vlprep.columns import list_of_vectors


def copy_store(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("_tmp"))
    return dst


def first_file(store: Path, table: str) -> Path:
    return sorted((store / table).glob("*.parquet"))[0]


def rewrite(path: Path, change: Callable[[pa.Table], pa.Table]) -> None:
    table = pq.read_table(path)
    new = change(table).replace_schema_metadata(table.schema.metadata)
    pq.write_table(new, path)


def set_vectors(table: pa.Table, column: str, change: Callable[[np.ndarray], None]) -> pa.Table:
    """Edit a vector column (fixed-size list, or a list of them) through an n x dim array."""
    col = table.column(column).combine_chunks()
    field = table.schema.field(column)
    if pa.types.is_fixed_size_list(col.type):
        dim = col.type.list_size
        x = col.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).copy()
        change(x)
        new = pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1).astype(np.float16)), dim)
    else:
        dim = col.type.value_type.list_size
        offsets = col.offsets.to_numpy()
        x = col.flatten().flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).copy()
        change(x)
        new = list_of_vectors(x.astype(np.float16), offsets - offsets[0], dim, pa.float16())
    return table.set_column(table.schema.get_field_index(column), field, new)


def add_error(store: Path, video_id: str, stage: str, reason: str) -> None:
    """An errors row for `video_id`, committed with the video's first-pass partition."""
    from vlprep.schemas import ERRORS

    pid = next(int(p.stem.split("-")[1]) for p in (store / "_inputs").glob("part-*.parquet")
               if video_id in pq.read_table(p, columns=["video_id"]).column(0).to_pylist())
    name = f"part-{pid:06d}-000.parquet"
    (store / "errors").mkdir(exist_ok=True)
    path = store / "videos" / name
    video_path = pq.read_table(path).to_pydict()
    paths = dict(zip(video_path["video_id"], video_path["path"], strict=True))
    pq.write_table(pa.Table.from_pylist([{"video_id": video_id, "stage": stage, "error": reason,
                                          "path": paths.get(video_id)}], schema=ERRORS),
                   store / "errors" / name)
    record_path = store / "_commits" / f"part-{pid:06d}.json"
    record = json.loads(record_path.read_text())
    record["files"]["errors"] = [name]
    record["rows"]["errors"] = 1
    record_path.write_text(json.dumps(record))


def uncommit(store: Path, pid: int) -> None:
    """Forget partition `pid` in every pass, as a run stopped before committing it."""
    for record in (store / "_commits").glob(f"*part-{pid:06d}.json"):
        record.unlink()


def keep_stages(store: Path, kinds: set[str]) -> None:
    """A store made by fewer stages: drop the other stages' tables and recipe entries."""
    from vlprep.stages import stage_classes

    classes = stage_classes()
    recipe = json.loads((store / "_recipe.json").read_text())
    dropped = {t for s in recipe["stages"] if s["kind"] not in kinds
               for t in classes[s["kind"]].tables}
    recipe["stages"] = [s for s in recipe["stages"] if s["kind"] in kinds]
    (store / "_recipe.json").write_text(json.dumps(recipe))
    for table in dropped:
        shutil.rmtree(store / table, ignore_errors=True)
    for path in (store / "_commits").glob("*.json"):
        record = json.loads(path.read_text())
        record["files"] = {t: f for t, f in record["files"].items() if t not in dropped}
        if not record["files"] and path.name.startswith("agg-"):
            path.unlink()
        else:
            path.write_text(json.dumps(record))
