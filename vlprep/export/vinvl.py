"""`vlprep export vinvl`: `regions` as the TSV VinVL's scene_graph_benchmark writes.

Layout under OUT (``convert_predictions_to_tsv`` and ``tsv_writer`` of
microsoft/scene_graph_benchmark; Oscar and VinVL readers open these with ``TSVFile``)::

    predictions.tsv       one line per sampled frame: ``image_key \\t json`` with
                          {"objects": [{"rect": [x1, y1, x2, y2], "bbox_id": i, "class": name,
                          "conf": score, "feature": base64 of float32[D], "attributes": [],
                          "attr_scores": []}], "relations": null}
    predictions.lineidx   the byte offset of each line (TSVFile seeks with it)
    predictions.hw.tsv    ``image_key \\t [{"height": H, "width": W}]`` (+ .lineidx)
    frames.tsv            ``image_key \\t video_id \\t sample_rank \\t frame_index \\t time``
    labelmap.json         the label map (VG-SGG-dicts keys ``label_to_idx``/``idx_to_label``),
                          every name unique, so scene_graph_benchmark's ``LabelLoader``
                          (``label_to_idx[obj["class"]]``) gives back each object's class id

A frame's image key is ``<video_id>_<sample_rank>`` (unique even when a short video samples
the same frame twice); ``frames.tsv`` maps it back to the frame. Boxes are in the sampled
frame's pixels, the "image" the detector saw; objects are most confident first, as VinVL
sorts them; ``feature`` is the region feature of the store (fp16 widened to float32: 1,024-d
from our box head, where VinVL's X152-C4 gives 2,048). Our detector predicts no
attributes, so those lists are empty.
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
           "classes", "class_names", "scores", "features"]


@dataclass
class VinvlOptions:
    name: str = "predictions"  # file stem: <name>.tsv, <name>.lineidx, <name>.hw.tsv


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
    plain = {c: batch.column(c).to_pylist()
             for c in ("video_id", "sample_rank", "frame_index", "time", "width", "height")}
    for r, (a, b) in enumerate(zip(offs[:-1], offs[1:], strict=True)):
        yield {**{c: v[r] for c, v in plain.items()}, "boxes": box_values[a:b],
               "classes": classes[a:b], "names": names[a:b], "scores": scores[a:b],
               "features": feat_values[a:b].astype(np.float32)}


def image_key(video_id: str, sample_rank: int) -> str:
    if any(c in video_id for c in "\t\r\n"):
        raise ExportError(f"video_id {video_id!r} cannot be a TSV key (tab or newline)")
    return f"{video_id}_{sample_rank}"


def objects_json(row: dict) -> str:
    objects = []
    for j, i in enumerate(np.argsort(-row["scores"], kind="stable")):
        objects.append({"rect": [float(x) for x in row["boxes"][i]], "bbox_id": j,
                        "class": row["names"][i], "conf": float(row["scores"][i]),
                        "feature": base64.b64encode(row["features"][i].tobytes()).decode(),
                        "attributes": [], "attr_scores": []})
    return json.dumps({"objects": objects, "relations": None})


def export_vinvl(store: str, out_dir: str, opts: VinvlOptions | None = None) -> ExportReport:
    opts = opts or VinvlOptions()
    source = StoreSource(store)
    source.require("regions", "detect")
    out = OutDir(out_dir)
    labels = LabelMap(source)
    counts = {"frames": 0, "objects": 0}
    with ExitStack() as stack:
        predictions = TsvWriter(stack, out, opts.name)
        sizes = TsvWriter(stack, out, f"{opts.name}.hw")
        frames = stack.enter_context(out.open("frames.tsv"))
        for batch in source.batches("regions", COLUMNS, batch_rows=256):
            for row in frame_rows(batch):
                key = image_key(row["video_id"], row["sample_rank"])
                row["names"] = labels.see(row["classes"].tolist(), row["names"])
                predictions.row(key, objects_json(row))
                sizes.row(key, json.dumps([{"height": row["height"], "width": row["width"]}]))
                frames.write(f"{key}\t{row['video_id']}\t{row['sample_rank']}\t"
                             f"{row['frame_index']}\t{row['time']:.6g}\n".encode())
                counts["frames"] += 1
                counts["objects"] += len(row["scores"])
    out.write_bytes("labelmap.json", json.dumps(labels.vg_sgg_dicts()).encode())
    report = ExportReport("vinvl", str(out.root), counts)
    out.finish({"format": "vinvl", "store": store, "counts": counts, "options": vars(opts)})
    return report
