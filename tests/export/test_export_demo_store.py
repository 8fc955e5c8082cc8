"""The four exports of the real demo store, read back the way each original repo's loader
reads them and checked against the store's tables."""

from __future__ import annotations

import base64
import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.dataset as ds


def test_demo_store_exports(tmp_path: Path, demo_store: Path) -> None:
    def table(name: str) -> list[dict]:
        return ds.dataset(str(demo_store / name), format="parquet").to_table().to_pylist()

    from vlprep.export.alpro import export_alpro
    from vlprep.export.mmpt import export_mmpt
    from vlprep.export.stoa import StoaOptions, export_stoa
    from vlprep.export.vinvl import export_vinvl

    s3d = {r["video_id"]: np.array(r["features"], np.float16) for r in table("s3d")}
    export_mmpt(str(demo_store), str(tmp_path / "mmpt"))
    for vid, feats in s3d.items():
        np.testing.assert_array_equal(np.load(tmp_path / "mmpt" / "feat_s3d" / f"{vid}.npy"),
                                      feats)
    with open(tmp_path / "mmpt" / "feat_s3d_shard" / "train_meta.pkl", "rb") as f:
        ids = pickle.load(f)[0]
    data = np.load(tmp_path / "mmpt" / "feat_s3d_shard" / "train_0_data.npy", mmap_mode="r")
    starts = np.load(tmp_path / "mmpt" / "feat_s3d_shard" / "train_0_starts.npy")
    for i, vid in enumerate(ids):
        np.testing.assert_array_equal(data[starts[i]:starts[i + 1]], s3d[vid])

    export_alpro(str(demo_store), str(tmp_path / "alpro"))
    df = pd.read_pickle(tmp_path / "alpro" / "txt" / "train.pkl")
    assert list(df.text) == [r["text"] for r in table("texts") if r["source"] == "caption"]
    lemmas = [r["lemma"] for r in sorted(table("entities"), key=lambda r: r["rank"])]
    assert [line.split(" ")[0] for line in
            (tmp_path / "alpro" / "unigrams.txt").read_text().split("\n")] == lemmas

    import torch

    export_stoa(str(demo_store), str(tmp_path / "stoa"), StoaOptions(shards=2))
    cache: dict = {}
    for i in range(2):
        cache.update(torch.load(tmp_path / "stoa" / f"object_attr_10_{i}_2.pth",
                                weights_only=True))
    regions = table("regions")
    assert sorted(cache) == sorted({r["video_id"] for r in regions})
    from test_export_stoa import stoa_reading

    label_to_idx = json.loads((tmp_path / "stoa" / "labelmap.json").read_text())["label_to_idx"]
    for vid, entry in cache.items():
        frames = sum(r["video_id"] == vid for r in regions)
        assert entry["objects"].shape == (frames, 10, 4) and entry["obj_cls"].shape == (frames, 10)
        # what STOA-VLP's object_loader_confident builds from the exported frame lists
        want = stoa_reading(json.loads((tmp_path / "stoa" / "tsv_files" / f"{vid}.json")
                                       .read_text()), label_to_idx, 10)
        assert torch.equal(entry["objects"], want["objects"])
        assert torch.equal(entry["obj_cls"], want["obj_cls"])
        assert list(entry["conf_set"].items()) == list(want["conf_set"].items())
    captions = json.loads((tmp_path / "stoa" / "frozen_train_labels.json").read_text())
    pos = torch.load(tmp_path / "stoa" / "webvidpos" / "postagging_ids_10_new.pth",
                     weights_only=True)
    texts = {(r["video_id"], r["text"]): r for r in table("texts") if r["source"] == "caption"}
    assert len(pos) == len(captions) == len(texts)
    for entry, caption in zip(pos, captions, strict=True):
        row = texts[(caption["video_id"], caption["caption"])]
        assert entry[0] == caption["video_id"] and len(entry[1]) == len(row["clip_ids"]) - 2

    export_vinvl(str(demo_store), str(tmp_path / "vinvl"))
    lines = (tmp_path / "vinvl" / "predictions.tsv").read_text().splitlines()
    assert len(lines) == len(regions)
    class_to_ind = json.loads((tmp_path / "vinvl" / "labelmap.json").read_text())["label_to_idx"]
    by_key = {f"{r['video_id']}_{r['sample_rank']}": r for r in regions}
    for line in lines:  # scene_graph_benchmark's LabelLoader: class_to_ind[obj["class"]]
        key, payload = line.split("\t")[:2]
        objects = json.loads(payload)["objects"]
        got = sorted(class_to_ind[o["class"]] for o in objects)
        assert got == sorted(by_key[key]["classes"])
    first = json.loads(lines[0].split("\t")[1])["objects"][0]
    dim = len(regions[0]["features"][0])
    assert np.frombuffer(base64.b64decode(first["feature"]), np.float32).shape == (dim,)
