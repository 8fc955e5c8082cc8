"""`vlprep import vinvl PREDICTIONS.tsv FEATURES.tsv --store STORE`: VinVL results into `regions`.

For users who already ran scene_graph_benchmark's feature extraction: its ``predictions.tsv``
(``image_key \\t {"objects": [{"rect", "class", "conf", "attributes", "attr_scores", ...}]}``)
and Oscar's features TSV (``image_key \\t {"num_boxes": N, "features": base64 float32
N x (D + 6)}``, or N x D) become `regions` rows, the same columns the detect stage writes.
Beside them it needs, by default next to PREDICTIONS: the label map (``labelmap.json`` or
``--label-map``: VG-SGG-dicts ``label_to_idx`` / ``attribute_to_idx``), the image sizes
(``<stem>.hw.tsv``) and the frame of each image key (``frames.tsv``: key, video_id,
sample_rank, frame_index, time, as ``export vinvl`` writes it; without it a key must read
``<video_id>_<sample_rank>`` and the frame index is the rank, the time NaN).

Exactly once, like a stage: the rows of each partition (the store's own partition of the
video when the store has `videos`, else ``partition_size`` videos in id order) are one commit
unit of a pass of their own (``ph90-part-<pid>``), written whole or not at all; a re-run
skips committed units. Only one partition's rows are in memory (the TSVs are read by offset).
"""

from __future__ import annotations

import base64
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa

from vlprep.columns import list_of_vectors
from vlprep.errors import ExportError
from vlprep.models.region_detector import box_geometry
from vlprep.models.vinvl_labels import NO_ATTRIBUTE, read_vinvl_label_map
from vlprep.schemas import REGIONS, with_vector_dims
from vlprep.store import Store
from vlprep.store.layout import pass_prefix

IMPORT_PASS = 90  # pass index of imported units: never one a job's own steps use


@dataclass
class ImportReport:
    frames: int = 0
    objects: int = 0
    units: int = 0
    skipped: int = 0
    notes: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"vinvl import: {self.frames} frames, {self.objects} objects in {self.units} "
                f"new units ({self.skipped} already committed)")


def line_offsets(path: Path) -> dict[str, int]:
    """image key -> byte offset of its line (one sequential read)."""
    offsets: dict[str, int] = {}
    with open(path, "rb") as f:
        pos = 0
        for line in f:
            key = line.split(b"\t", 1)[0].decode()
            if key in offsets:
                raise ExportError(f"{path}: image key {key!r} appears twice")
            offsets[key] = pos
            pos += len(line)
    return offsets


def read_line(f, offset: int) -> list[str]:
    f.seek(offset)
    return f.readline().decode().rstrip("\r\n").split("\t")


def frame_map(path: Path | None, keys: list[str]) -> dict[str, tuple[str, int, int, float]]:
    """image key -> (video_id, sample_rank, frame_index, time)."""
    if path is not None:
        out = {}
        for line in path.read_text().splitlines():
            key, video, rank, index, time = line.split("\t")[:5]
            out[key] = (video, int(rank), int(index), float(time))
        missing = [k for k in keys if k not in out]
        if missing:
            raise ExportError(f"{path}: no frame for image key {missing[0]!r}")
        return out
    out = {}
    for key in keys:
        video, _, rank = key.rpartition("_")
        if not video or not rank.isdigit():
            raise ExportError(f"image key {key!r} is not <video_id>_<sample_rank>: give "
                              "--frames (key, video_id, sample_rank, frame_index, time)")
        out[key] = (video, int(rank), int(rank), math.nan)
    return out


def beside(given: str | None, default: Path, what: str, required: bool = True) -> Path | None:
    path = Path(given) if given else default
    if path.is_file():
        return path
    if given or required:
        raise ExportError(f"{what}: {path} is not a file")
    return None


def partitions(store: Store, videos: list[str], size: int) -> dict[str, int]:
    """video -> partition id: the store's own where it has `videos`, else by id order."""
    from vlprep.export.source import StoreSource

    known: dict[str, int] = {}
    if store.exists() and "videos" in store.tables():
        source = StoreSource(store.uri)
        for key in source.partitions:
            table = source.partition_table(key, "videos", ["video_id"])
            if table is not None and key.isdigit():
                known.update((v, int(key)) for v in table.column("video_id").to_pylist())
    unknown = sorted(v for v in set(videos) if v not in known)
    start = max(known.values(), default=-1) + 1
    known.update((v, start + i // size) for i, v in enumerate(unknown))
    return known


def frame_row(objects: list[dict], block: np.ndarray, hw: tuple[int, int], dim: int,
              classes: dict[str, int], attributes: dict[str, int], key: str) -> dict:
    height, width = hw
    if len(objects) != len(block):
        raise ExportError(f"{key}: {len(objects)} objects but {len(block)} feature rows")
    boxes = np.array([o["rect"] for o in objects], np.float32).reshape(-1, 4)
    if block.shape[1] == dim + 6:
        features, geometry = block[:, :dim], block[:, dim:]
    elif block.shape[1] == dim:
        features, geometry = block, box_geometry(boxes, width, height)
    else:
        raise ExportError(f"{key}: features of width {block.shape[1]}, expected {dim} or "
                          f"{dim + 6} (--feature-dim)")
    try:
        ids = [classes[o["class"]] for o in objects]
        attrs = [[(attributes[a], a, float(s)) for a, s in zip(o.get("attributes", []),
                                                           o.get("attr_scores", []),
                                                           strict=True)
                  if s > 0 and a != NO_ATTRIBUTE] for o in objects]
    except KeyError as e:
        raise ExportError(f"{key}: name {e.args[0]!r} is not in the label map") from None
    return {"boxes": boxes, "classes": ids, "names": [o["class"] for o in objects],
            "scores": [float(o["conf"]) for o in objects], "features": features,
            "geometry": geometry.astype(np.float32), "attrs": attrs, "width": width,
            "height": height}


def regions_table(rows: list[tuple[tuple, dict]], dim: int) -> pa.Table:
    schema = with_vector_dims(REGIONS, features=dim)
    offsets = np.concatenate([[0], np.cumsum([len(r["scores"]) for _, r in rows])])
    off = pa.array(offsets.astype(np.int32))
    flat = [a for _, r in rows for a in r["attrs"]]
    cat = (lambda k: np.concatenate([r[k] for _, r in rows]))  # noqa: E731
    return pa.Table.from_arrays([
        pa.array([f[0] for f, _ in rows], pa.string()),
        pa.array([f[2] for f, _ in rows], pa.int32()),
        pa.array([f[3] for f, _ in rows], pa.float32()),
        pa.array([f[1] for f, _ in rows], pa.int16()),
        pa.array([r["width"] for _, r in rows], pa.int32()),
        pa.array([r["height"] for _, r in rows], pa.int32()),
        list_of_vectors(cat("boxes").reshape(-1, 4), offsets, 4, pa.float32()),
        pa.ListArray.from_arrays(off, pa.array([c for _, r in rows for c in r["classes"]],
                                               pa.int32())),
        pa.ListArray.from_arrays(off, pa.array([n for _, r in rows for n in r["names"]],
                                               pa.string())),
        pa.ListArray.from_arrays(off, pa.array([s for _, r in rows for s in r["scores"]],
                                               pa.float32())),
        list_of_vectors(cat("features").reshape(-1, dim).astype(np.float16), offsets, dim,
                        pa.float16()),
        list_of_vectors(cat("geometry").reshape(-1, 6), offsets, 6, pa.float32()),
        pa.ListArray.from_arrays(off, pa.array([[i for i, _, _ in a] for a in flat],
                                               pa.list_(pa.int16()))),
        pa.ListArray.from_arrays(off, pa.array([[n for _, n, _ in a] for a in flat],
                                               pa.list_(pa.string()))),
        pa.ListArray.from_arrays(off, pa.array([[s for _, _, s in a] for a in flat],
                                               pa.list_(pa.float32()))),
    ], schema=schema)


def import_vinvl(predictions: str, features: str, store_uri: str, frames: str | None = None,
                 hw: str | None = None, label_map: str | None = None,
                 partition_size: int = 256, feature_dim: int = 2048,
                 target_file_bytes: int = 64 << 20) -> ImportReport:
    pred_path, feat_path = Path(predictions), Path(features)
    for path in (pred_path, feat_path):
        if not path.is_file():
            raise ExportError(f"{path}: no such file")
    stem = pred_path.with_suffix("")
    hw_path = beside(hw, Path(f"{stem}.hw.tsv"), "image sizes (--hw)")
    map_path = beside(label_map, pred_path.parent / "labelmap.json", "label map (--label-map)")
    frames_path = beside(frames, pred_path.parent / "frames.tsv", "frames (--frames)", False)
    class_names, attribute_names = read_vinvl_label_map(map_path)  # type: ignore[arg-type]
    classes = {n: i for i, n in enumerate(class_names) if i > 0}
    attributes = {n: i for i, n in enumerate(attribute_names or []) if i > 0}
    pred_at, feat_at = line_offsets(pred_path), line_offsets(feat_path)
    missing = [k for k in pred_at if k not in feat_at]
    if missing:
        raise ExportError(f"{feat_path}: no features for image key {missing[0]!r}")
    sizes = {}
    for line in hw_path.read_text().splitlines():  # type: ignore[union-attr]
        key, value = line.split("\t")[:2]
        info = json.loads(value)[0]
        sizes[key] = (int(info["height"]), int(info["width"]))
    keys = list(pred_at)
    where = frame_map(frames_path, keys)
    store = Store(store_uri)
    if store.exists() and any("regions" in c.files and not c.unit.startswith(
            pass_prefix(IMPORT_PASS)) for c in store.commits()):
        raise ExportError(f"store {store_uri} already has `regions` from a detect stage: "
                          "import into another store")
    pid_of = partitions(store, [where[k][0] for k in keys], partition_size)
    by_pid: dict[int, list[str]] = defaultdict(list)
    for key in keys:
        by_pid[pid_of[where[key][0]]].append(key)
    report = ImportReport()
    done = store.committed(IMPORT_PASS) if store.exists() else set()
    with open(pred_path, "rb") as pf, open(feat_path, "rb") as ff:
        for pid in sorted(by_pid):
            if pid in done:
                report.skipped += 1
                continue
            rows = []
            for key in by_pid[pid]:
                if key not in sizes:
                    raise ExportError(f"{hw_path}: no size for image key {key!r}")
                objects = json.loads(read_line(pf, pred_at[key])[1])["objects"]
                info = json.loads(read_line(ff, feat_at[key])[1])
                flat = np.frombuffer(base64.b64decode(info["features"]), np.float32)
                block = flat.reshape(int(info["num_boxes"]), -1) if info["num_boxes"] else \
                    flat.reshape(0, feature_dim + 6)
                rows.append((where[key], frame_row(objects, block, sizes[key], feature_dim,
                                                   classes, attributes, key)))
            rows.sort(key=lambda r: (r[0][0], r[0][1]))
            table = regions_table(rows, feature_dim)
            videos = len({f[0] for f, _ in rows})
            store.write_unit(f"{pass_prefix(IMPORT_PASS)}part-{pid:06d}", videos,
                             {"regions": table}, target_file_bytes)
            report.units += 1
            report.frames += len(rows)
            report.objects += sum(len(r["scores"]) for _, r in rows)
    record_recipe(store, map_path, report)  # type: ignore[arg-type]
    return report


def record_recipe(store: Store, label_map: Path, report: ImportReport) -> None:
    """A store without a recipe gets one naming the label map (exports read it there)."""
    path = store.path("_recipe.json")
    if store.fs.get_file_info(path).type.name == "File":
        report.notes.append("the store's recipe is kept as it is (it does not list the import)")
        return
    recipe = {"stages": [{"name": "detect", "kind": "detect", "imported": "vinvl",
                          "options": {"architecture": "vinvl_x152c4",
                                      "label_map": str(label_map.resolve())}}]}
    store.write_atomic(path, json.dumps(recipe, indent=1).encode())
