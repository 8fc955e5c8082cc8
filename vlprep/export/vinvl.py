"""`vlprep export vinvl`: `regions` as scene_graph_benchmark's feature extraction writes it.

Layout under OUT (``convert_predictions_to_tsv`` / ``tsv_writer`` of
microsoft/scene_graph_benchmark, and the feature and label TSVs Oscar / VinVL read with
``TSVFile``), every TSV with its ``.lineidx`` (the byte offset of each line)::

    predictions.tsv         ``image_key \\t json``: {"objects": [{"rect": [x1, y1, x2, y2],
                            "bbox_id": i, "class": name, "conf": score, "feature": base64 of
                            float32[D], "attributes": [names], "attr_scores": [scores]}],
                            "relations": null}
    predictions.hw.tsv      ``image_key \\t [{"height": H, "width": W}]``
    predictions.feature.tsv ``image_key \\t {"num_boxes": N, "features": base64 of float32
                            N x (D + 6)}``: the region feature then Oscar's 6-d geometry
                            (x1/W, y1/H, x2/W, y2/H, w/W, h/H), as Oscar's readers split it
    predictions.label.tsv   ``image_key \\t [{"class": name, "conf": score, "rect": [...]}]``
    frames.tsv              ``image_key \\t video_id \\t sample_rank \\t frame_index \\t time``
    labelmap.json           VG-SGG-dicts: ``label_to_idx`` / ``idx_to_label`` (every name
                            unique, so scene_graph_benchmark's ``LabelLoader`` gives back each
                            object's class id) and, when the detector has attributes,
                            ``attribute_to_idx`` / ``idx_to_attribute``

A frame's image key is ``<video_id>_<sample_rank>`` (unique even when a short video samples
the same frame twice); ``frames.tsv`` maps it back to the frame. Boxes are in the sampled
frame's pixels, the "image" the detector saw; objects keep the store's order (VinVL's own:
proposal order, or by score when its detection count was clipped; a torchvision detector's
rows are by score). ``feature`` is the store's fp16 region feature widened to float32 (2,048-d
from VinVL's X152-C4). Attributes are those VinVL's post-processor scored above its
threshold, by descending score; the zero-score padding slots of its 16 (whose labels
torch.topk leaves arbitrary) are not written. A detector without attributes writes empty
lists.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import IO

import numpy as np
import pyarrow as pa

from vlprep.export import ExportError, ExportReport
from vlprep.export.labels import LabelMap
from vlprep.export.sink import OutDir
from vlprep.export.source import StoreSource

COLUMNS = ["video_id", "sample_rank", "frame_index", "time", "width", "height", "boxes",
           "classes", "class_names", "scores", "features", "geometry"]
ATTRIBUTE_COLUMNS = ["attr_ids", "attr_names", "attr_scores"]


@dataclass
class VinvlOptions:
    name: str = "predictions"  # file stem: <name>.tsv, <name>.hw.tsv, <name>.feature.tsv, ...


class TsvWriter:
    """A TSV with its ``.lineidx`` (byte offset of every line), both written aside."""

    def __init__(self, stack: ExitStack, out: OutDir, stem: str):
        self.tsv: IO[bytes] = stack.enter_context(out.open(f"{stem}.tsv"))
        self.idx: IO[bytes] = stack.enter_context(out.open(f"{stem}.lineidx"))
        self.offset = 0

    def row(self, *fields: str) -> None:
        line = ("\t".join(fields) + "\n").encode()
        self.idx.write(f"{self.offset}\n".encode())
        self.tsv.write(line)
        self.offset += len(line)


def frame_rows(batch: pa.RecordBatch) -> Iterator[dict]:
    """The batch's rows with their list columns as numpy arrays (features as float32)."""
    def lists(column: str) -> tuple[pa.Array, np.ndarray]:
        col = batch.column(column)
        offsets = col.offsets.to_numpy()
        return col.flatten(), offsets - offsets[0]

    boxes, offs = lists("boxes")
    box_values = boxes.flatten().to_numpy(zero_copy_only=False).reshape(-1, 4)
    feats = lists("features")[0]
    dim = feats.type.list_size
    feat_values = feats.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim)
    classes = lists("classes")[0].to_numpy(zero_copy_only=False)
    names = lists("class_names")[0].to_pylist()
    scores = lists("scores")[0].to_numpy(zero_copy_only=False)
    geometry = lists("geometry")[0].flatten().to_numpy(zero_copy_only=False).reshape(-1, 6)
    plain = {c: batch.column(c).to_pylist()
             for c in ("video_id", "sample_rank", "frame_index", "time", "width", "height")}
    attrs = {c: batch.column(c).to_pylist() if c in batch.schema.names else None
             for c in ATTRIBUTE_COLUMNS}
    for r, (a, b) in enumerate(zip(offs[:-1], offs[1:], strict=True)):
        row_attrs = {c: (v[r] if v is not None and v[r] is not None else [[]] * (b - a))
                     for c, v in attrs.items()}
        yield {**{c: v[r] for c, v in plain.items()}, "boxes": box_values[a:b],
               "classes": classes[a:b], "names": names[a:b], "scores": scores[a:b],
               "features": feat_values[a:b].astype(np.float32),
               "geometry": geometry[a:b].astype(np.float32), **row_attrs}


def image_key(video_id: str, sample_rank: int) -> str:
    if any(c in video_id for c in "\t\r\n"):
        raise ExportError(f"video_id {video_id!r} cannot be a TSV key (tab or newline)")
    return f"{video_id}_{sample_rank}"


def objects_json(row: dict) -> str:
    objects = []
    for i in range(len(row["scores"])):
        objects.append({"rect": [float(x) for x in row["boxes"][i]], "bbox_id": i,
                        "class": row["names"][i], "conf": float(row["scores"][i]),
                        "feature": base64.b64encode(row["features"][i].tobytes()).decode(),
                        "attributes": list(row["attr_names"][i] or []),
                        "attr_scores": [float(x) for x in row["attr_scores"][i] or []]})
    return json.dumps({"objects": objects, "relations": None})


def features_json(row: dict) -> str:
    """Oscar's feature row: the region features with the 6-d geometry appended."""
    data = np.concatenate([row["features"], row["geometry"]], axis=1).astype(np.float32)
    return json.dumps({"num_boxes": len(data),
                       "features": base64.b64encode(data.tobytes()).decode()})


def labels_json(row: dict) -> str:
    return json.dumps([{"class": row["names"][i], "conf": float(row["scores"][i]),
                        "rect": [float(x) for x in row["boxes"][i]]}
                       for i in range(len(row["scores"]))])


class AttributeMap:
    """Attribute id -> name from the recipe's VinVL label map, completed from the rows."""

    def __init__(self, source: StoreSource):
        self.names: dict[int, str] = {}
        stage = source.recipe_stage("detect") or {}
        spec = stage.get("options", {}).get("label_map")
        if spec and str(spec).endswith(".json"):
            try:
                from vlprep.models.vinvl_labels import read_vinvl_label_map

                attributes = read_vinvl_label_map(spec)[1] or []
                self.names = dict(enumerate(attributes))
            except (ValueError, OSError):
                pass  # the rows' own names are used

    def see(self, row: dict) -> None:
        for ids, names in zip(row["attr_ids"], row["attr_names"], strict=True):
            for i, name in zip(ids or [], names or [], strict=True):
                self.names.setdefault(int(i), str(name))

    def dicts(self) -> dict[str, dict]:
        ids = [i for i in sorted(self.names) if i > 0]
        if not ids:
            return {}
        return {"attribute_to_idx": {self.names[i]: i for i in ids},
                "idx_to_attribute": {str(i): self.names[i] for i in ids}}


def export_vinvl(store: str, out_dir: str, opts: VinvlOptions | None = None) -> ExportReport:
    opts = opts or VinvlOptions()
    source = StoreSource(store)
    source.require("regions", "detect")
    out = OutDir(out_dir)
    labels = LabelMap(source)
    attributes = AttributeMap(source)
    columns = COLUMNS + [c for c in ATTRIBUTE_COLUMNS if c in source.columns("regions")]
    counts = {"frames": 0, "objects": 0}
    with ExitStack() as stack:
        predictions = TsvWriter(stack, out, opts.name)
        sizes = TsvWriter(stack, out, f"{opts.name}.hw")
        features = TsvWriter(stack, out, f"{opts.name}.feature")
        label_rows = TsvWriter(stack, out, f"{opts.name}.label")
        frames = stack.enter_context(out.open("frames.tsv"))
        for batch in source.batches("regions", columns, batch_rows=256):
            for row in frame_rows(batch):
                key = image_key(row["video_id"], row["sample_rank"])
                row["names"] = labels.see(row["classes"].tolist(), row["names"])
                attributes.see(row)
                predictions.row(key, objects_json(row))
                sizes.row(key, json.dumps([{"height": row["height"], "width": row["width"]}]))
                features.row(key, features_json(row))
                label_rows.row(key, labels_json(row))
                frames.write(f"{key}\t{row['video_id']}\t{row['sample_rank']}\t"
                             f"{row['frame_index']}\t{row['time']:.6g}\n".encode())
                counts["frames"] += 1
                counts["objects"] += len(row["scores"])
    out.write_bytes("labelmap.json",
                    json.dumps({**labels.vg_sgg_dicts(), **attributes.dicts()}).encode())
    report = ExportReport("vinvl", str(out.root), counts)
    out.finish({"format": "vinvl", "store": store, "counts": counts, "options": vars(opts)})
    return report
