"""`vlprep export vinvl`, read back as scene_graph_benchmark's TSVFile and Oscar's readers
do: seek to each ``.lineidx`` offset, split the line on tabs, ``json.loads`` the objects and
``np.frombuffer(base64.b64decode(feature), np.float32)``."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
import pytest
from export_fake_store import (
    ATTRIBUTES,
    EXPORTED_NAMES,
    REGION_DIM,
    by_video,
    read_table,
    write_store,
)

from vlprep.export.vinvl import export_vinvl


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("vinvl"))


def tsv_rows(tsv: Path) -> list[list[str]]:
    """TSVFile.seek(i) for every line listed in the .lineidx."""
    offsets = [int(x) for x in tsv.with_suffix(".lineidx").read_text().split()]
    rows = []
    with open(tsv) as fp:
        for pos in offsets:
            fp.seek(pos)
            rows.append([s.strip() for s in fp.readline().split("\t")])
    return rows


def test_vinvl_tsv(store: Path, tmp_path: Path) -> None:
    report = export_vinvl(str(store), str(tmp_path / "out"))
    out = tmp_path / "out"
    regions = read_table(store, "regions")
    rows = tsv_rows(out / "predictions.tsv")
    assert len(rows) == regions.num_rows == report.counts["frames"]
    frames = {line.split("\t")[0]: line.split("\t")[1:]
              for line in (out / "frames.tsv").read_text().splitlines()}
    sizes = dict(tsv_rows(out / "predictions.hw.tsv"))
    features = dict(tsv_rows(out / "predictions.feature.tsv"))
    labels = dict(tsv_rows(out / "predictions.label.tsv"))
    per_video = by_video(regions)
    seen = set()
    # scene_graph_benchmark's ODTSVDataset: class_to_ind = label_to_idx (+ background 0);
    # LabelLoader.add_classes: class_to_ind[obj["class"]] for every object
    class_to_ind = json.loads((out / "labelmap.json").read_text())["label_to_idx"]
    class_to_ind["__background__"] = 0
    for key, payload in rows:
        video_id, rank, frame_index, _ = frames[key]
        frame = next(r for r in per_video[video_id] if r["sample_rank"] == int(rank))
        assert int(frame_index) == frame["frame_index"] and key not in seen
        seen.add(key)
        assert json.loads(sizes[key]) == [{"height": frame["height"], "width": frame["width"]}]
        data = json.loads(payload)
        assert data["relations"] is None
        objects = data["objects"]
        assert len(objects) == len(frame["scores"])  # the store's order (VinVL's own)
        for i, obj in enumerate(objects):
            assert obj["bbox_id"] == i and obj["class"] == EXPORTED_NAMES[frame["classes"][i]]
            assert class_to_ind[obj["class"]] == frame["classes"][i]  # the ids come back
            assert obj["conf"] == pytest.approx(frame["scores"][i])
            np.testing.assert_allclose(obj["rect"], frame["boxes"][i], rtol=1e-6)
            feature = np.frombuffer(base64.b64decode(obj["feature"]), np.float32)
            assert feature.shape == (REGION_DIM,)
            np.testing.assert_array_equal(feature, np.array(frame["features"][i], np.float16))
            if frame["attr_ids"] is None:
                assert obj["attributes"] == [] and obj["attr_scores"] == []
            else:
                assert obj["attributes"] == frame["attr_names"][i]
                np.testing.assert_allclose(obj["attr_scores"], frame["attr_scores"][i])
        # Oscar's reader: features and the 6-d geometry in one float32 N x (D + 6) block
        info = json.loads(features[key])
        flat = np.frombuffer(base64.b64decode(info["features"]), np.float32)
        block = flat.reshape(info["num_boxes"], -1) if info["num_boxes"] else flat.reshape(
            0, REGION_DIM + 6)  # (Oscar's reshape(0, -1) cannot read an empty frame)
        assert block.shape == (len(objects), REGION_DIM + 6)
        np.testing.assert_array_equal(block[:, :REGION_DIM],
                                      np.array(frame["features"], np.float16).reshape(
                                          -1, REGION_DIM).astype(np.float32))
        np.testing.assert_allclose(block[:, REGION_DIM:], np.array(frame["geometry"]).reshape(
            -1, 6), rtol=1e-6)
        assert [o["class"] for o in json.loads(labels[key])] == [o["class"] for o in objects]
    assert len(seen) == regions.num_rows
    label_map = json.loads((out / "labelmap.json").read_text())
    assert label_map["idx_to_label"] == {str(i): n for i, n in enumerate(EXPORTED_NAMES) if i}
    assert len(set(label_map["label_to_idx"])) == len(EXPORTED_NAMES) - 1  # "N/A", "N/A_10"
    assert set(label_map["attribute_to_idx"]) <= set(ATTRIBUTES[1:])
    assert all(ATTRIBUTES[i] == n for n, i in label_map["attribute_to_idx"].items())
