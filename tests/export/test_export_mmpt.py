"""`vlprep export mmpt`, read back the way fairseq MMPT reads its files: np.load of the
per-video features, ShardedTensor's (data, starts) slicing with the pickled shard meta, and
ShardedTextProcessor's caps_ids (-1 stripped) and startends."""

from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
from export_fake_store import by_video, read_table, write_store
from typer.testing import CliRunner

from vlprep.cli import app
from vlprep.export import ExportError
from vlprep.export.mmpt import MmptOptions, export_mmpt
from vlprep.export.sink import NpyWriter

BERT = "bert-base-uncased"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("mmpt"))


def sharded_load(path: str) -> tuple[np.ndarray, np.ndarray]:
    """What ShardedTensor.load(path, "r") holds: memory-mapped data and starts."""
    starts = np.load(path + "_starts.npy", mmap_mode="r")
    data = np.load(path + "_data.npy", mmap_mode="r")
    assert starts[0] == 0 and starts[-1] == len(data) and (np.diff(starts) >= 0).all()
    return data, starts


def expected(store: Path) -> tuple[dict[str, np.ndarray], dict[str, list[dict]]]:
    s3d = {r["video_id"]: np.array(r["features"], np.float16).reshape(-1, 512)
           for r in read_table(store, "s3d").to_pylist()}
    texts = by_video(read_table(store, "texts"))
    return s3d, texts


def expected_lines(rows: list[dict], seconds: float) -> list[tuple[float, float, list[int]]]:
    rows = sorted(rows, key=lambda r: r["segment"])
    timed = [r for r in rows if r["source"] == "transcript"]
    if timed:
        return [(r["start"], r["end"], r["bert_ids"]) for r in timed]
    return [(0.0, seconds, r["bert_ids"]) for r in rows if r["bert_ids"] is not None]


def read_split(out: Path, split: str) -> dict[str, tuple]:
    """video_id -> (features, caps_ids, startends), through meta.pkl as MMPT looks them up."""
    with open(out / "feat_s3d_shard" / f"{split}_meta.pkl", "rb") as f:
        meta = pickle.load(f)
    listed = (out / f"s3d_{split}.lst").read_text().split()
    assert [v for shard in meta.values() for v in shard] == listed
    assert sorted(meta) == list(range(len(meta)))
    found = {}
    for shard_id, ids in meta.items():
        data, starts = sharded_load(str(out / "feat_s3d_shard" / f"{split}_{shard_id}"))
        assert data.dtype == np.float16 and starts.dtype == np.int64 and len(starts) == len(ids) + 1
        tpath = str(out / "feat_s3d_shard" / f"raw_caption_dedup.{BERT}.{split}_{shard_id}")
        caps, cstarts = sharded_load(tpath + ".caps_ids")
        se, sstarts = sharded_load(tpath + ".startends")
        assert caps.dtype == np.int32 and caps.shape[1] == 32 and se.dtype == np.float32
        for i, vid in enumerate(ids):
            found[vid] = (data[starts[i]:starts[i + 1]], caps[cstarts[i]:cstarts[i + 1]],
                          se[sstarts[i]:sstarts[i + 1]])
    return found


def test_mmpt_files_read_back_as_mmpt_reads_them(store: Path, tmp_path: Path) -> None:
    report = export_mmpt(str(store), str(tmp_path / "out"))
    out = tmp_path / "out"
    s3d, texts = expected(store)
    for vid, feats in s3d.items():  # per-video features (VideoProcessor: np.load)
        got = np.load(out / "feat_s3d" / f"{vid}.npy")
        assert got.dtype == np.float16 and got.shape == feats.shape == (len(feats), 512)
        np.testing.assert_array_equal(got, feats)
    found = read_split(out, "train")
    assert read_split(out, "val") == {}
    # v2 has no bert_ids, v5 no S3D, v7 no S3D window (and no texts): not in the shards
    assert sorted(found) == ["v0", "v1", "v3", "v4", "v6"]
    assert report.counts == {"videos": 7, "per_video_files": 7, "no_seconds": 1,
                             "without_text": 1, "train": 5, "val": 0}
    captions = json.loads((out / "raw_caption.json").read_text())
    assert list(captions) == list(found)
    for vid, (feats, caps, startends) in found.items():
        np.testing.assert_array_equal(feats, s3d[vid])
        lines = expected_lines(texts[vid], float(len(s3d[vid])))
        assert caps.shape == (len(lines), 32) and startends.shape == (len(lines), 2)
        for row, se, (start, end, ids) in zip(caps, startends, lines, strict=True):
            assert row[row != -1].tolist() == ids[:32]  # ShardedTextProcessor strips -1
            assert (row[len(ids[:32]):] == -1).all()
            np.testing.assert_allclose(se, [start, end], rtol=1e-6)
        assert captions[vid]["start"] == pytest.approx([s for s, _, _ in lines], abs=1e-3)
        assert len(captions[vid]["text"]) == len(lines)
    assert captions["v1"]["end"] == [float(len(s3d["v1"]))]  # caption spans the whole video
    done = json.loads((out / "vlprep-export.json").read_text())
    assert done["counts"]["train"] == 5


def test_mmpt_shards_and_splits(store: Path, tmp_path: Path) -> None:
    opts = MmptOptions(shard_size=2, val_fraction=0.4, dtype="float32", per_video=False)
    report = export_mmpt(str(store), str(tmp_path / "out"), opts)
    out = tmp_path / "out"
    train, val = read_split_any(out, "train"), read_split_any(out, "val")
    assert not set(train) & set(val) and sorted({*train, *val}) == ["v0", "v1", "v3", "v4", "v6"]
    assert report.counts["train"] == len(train) and report.counts["val"] == len(val)
    for split in ("train", "val"):
        with open(out / "feat_s3d_shard" / f"{split}_meta.pkl", "rb") as f:
            meta = pickle.load(f)
        assert all(1 <= len(ids) <= 2 for ids in meta.values())
    assert not (out / "feat_s3d").exists()
    data, _ = sharded_load(str(out / "feat_s3d_shard" / "train_0"))
    assert data.dtype == np.float32


def read_split_any(out: Path, split: str) -> dict[str, np.ndarray]:
    with open(out / "feat_s3d_shard" / f"{split}_meta.pkl", "rb") as f:
        meta = pickle.load(f)
    found = {}
    for shard_id, ids in meta.items():
        data, starts = sharded_load(str(out / "feat_s3d_shard" / f"{split}_{shard_id}"))
        found.update({v: data[starts[i]:starts[i + 1]] for i, v in enumerate(ids)})
    return found


def test_mmpt_no_text_shards_every_video(store: Path, tmp_path: Path) -> None:
    export_mmpt(str(store), str(tmp_path / "out"), MmptOptions(text=False))
    out = tmp_path / "out"
    s3d, _ = expected(store)
    found = read_split_any(out, "train")
    assert list(found) == [v for v, feats in s3d.items() if len(feats)]
    assert not (out / "raw_caption.json").exists()
    assert not list((out / "feat_s3d_shard").glob("*caps_ids*"))


def test_mmpt_interrupted_export_reruns_cleanly(store: Path, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    clean = tmp_path / "clean"
    export_mmpt(str(store), str(clean), MmptOptions(shard_size=2))
    calls = {"n": 0}
    append = NpyWriter.append

    def failing(self: NpyWriter, block: np.ndarray) -> None:
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt  # as if killed mid-shard
        append(self, block)

    monkeypatch.setattr(NpyWriter, "append", failing)
    with pytest.raises(KeyboardInterrupt):
        export_mmpt(str(store), str(out), MmptOptions(shard_size=2))
    monkeypatch.undo()
    assert not list(out.rglob("*.vlprep-tmp")) and not (out / "raw_caption.json").exists()
    (out / ".left.npy.0123.vlprep-tmp").write_bytes(b"partial")  # a SIGKILL's leftover
    export_mmpt(str(store), str(out), MmptOptions(shard_size=2))
    assert not list(out.rglob("*.vlprep-tmp"))
    files = sorted(p.relative_to(clean) for p in clean.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(out) for p in out.rglob("*") if p.is_file())
    for rel in files:
        if rel.name != "vlprep-export.json":
            assert (clean / rel).read_bytes() == (out / rel).read_bytes(), rel


def test_mmpt_errors_are_one_line(store: Path, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="no such directory"):
        export_mmpt(str(tmp_path / "missing"), str(tmp_path / "out"))
    runner = CliRunner()
    result = runner.invoke(app, ["export", "mmpt", str(tmp_path / "missing"), str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "no such directory" in result.output
    result = runner.invoke(app, ["export", "mmpt", str(store), str(tmp_path / "o"),
                                 "--shard-size", "3"])
    assert result.exit_code == 0, result.output
    assert "mmpt: 7 videos" in result.output and "warning: 1 videos have no S3D" in result.output
