"""`vlprep export alpro`, read back as ALPRO does: ``pd.read_pickle`` of the caption table
(then its ``txt_len < max_txt_len`` filter) and ``unigrams.txt`` split on newlines, first
word of each line."""

from __future__ import annotations

import os
import pickletools
from pathlib import Path

import pandas as pd
import pytest
from export_fake_store import read_table, write_store

from vlprep.export.alpro import AlproOptions, export_alpro


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("alpro"))


def test_alpro_caption_table_and_unigrams(store: Path, tmp_path: Path) -> None:
    report = export_alpro(str(store), str(tmp_path / "out"))
    out = tmp_path / "out"
    texts = read_table(store, "texts").to_pylist()
    captions = [(r["video_id"], r["text"]) for r in texts if r["source"] == "caption"]
    df = pd.read_pickle(out / "txt" / "train.pkl")
    assert list(df.columns) == ["video_id", "text", "txt_len"]
    assert df["txt_len"].dtype == "int64" and df["video_id"].dtype == object
    assert list(zip(df.video_id, df.text, strict=True)) == captions
    assert (df.txt_len == df.text.str.split().str.len()).all()
    kept = df[df["txt_len"] < 80]  # ALPRO's filter, then datalist.iloc[i].video_id / .text
    assert str(kept.iloc[0].video_id) == captions[0][0] and kept.iloc[0].text.strip()
    assert pd.read_pickle(out / "txt" / "val.pkl").empty
    entities = sorted((r["rank"], r["lemma"]) for r in read_table(store, "entities").to_pylist())
    content = (out / "unigrams.txt").read_text().split("\n")[:1000]  # as ALPRO reads it
    assert [c.split(" ")[0] for c in content] == [lemma for _, lemma in entities]
    assert report.counts == {"train": len(captions), "val": 0, "entities": 25}


def test_alpro_pickle_needs_no_numpy(store: Path, tmp_path: Path) -> None:
    """Only a reference to pandas.DataFrame and plain values: readable by old numpy/pandas."""
    export_alpro(str(store), str(tmp_path / "out"))
    data = (tmp_path / "out" / "txt" / "train.pkl").read_bytes()
    strings = [arg for op, arg, _ in pickletools.genops(data) if isinstance(arg, str)]
    assert "numpy" not in " ".join(s for s in strings if "." in s and " " not in s)
    assert strings[:2] == ["pandas.core.frame", "DataFrame"]


def test_alpro_split_all_texts_and_video_links(store: Path, tmp_path: Path) -> None:
    opts = AlproOptions(val_fraction=0.5, all_texts=True, link_videos=True)
    report = export_alpro(str(store), str(tmp_path / "out"), opts)
    out = tmp_path / "out"
    train = pd.read_pickle(out / "txt" / "train.pkl")
    val = pd.read_pickle(out / "txt" / "val.pkl")
    assert not set(train.video_id) & set(val.video_id)
    assert len(train) + len(val) == read_table(store, "texts").num_rows
    assert len(val) > 0 and len(train) > 0
    links = sorted(os.listdir(out / "videos"))
    assert links == ["v0.mp4", "v1.mp4"]  # the others are s3:// paths
    assert os.path.realpath(out / "videos" / "v0.mp4") == str(store.parent / "v0.webm")
    assert report.counts["video_links"] == 2 and "6 videos are not local" in report.notes[0]


def test_alpro_export_prints_the_num_entities_flag(store: Path, tmp_path: Path) -> None:
    """ALPRO's prompter has --num_entities (default 1000) outputs: with the store's 25
    entities its code fails unless the flag matches unigrams.txt, so the CLI says it."""
    from typer.testing import CliRunner

    from vlprep.cli import app

    result = CliRunner().invoke(app, ["export", "alpro", str(store), str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert "pass --num_entities 25 to ALPRO" in result.output
    lines = (tmp_path / "out" / "unigrams.txt").read_text().split("\n")
    assert len(lines) == 25
