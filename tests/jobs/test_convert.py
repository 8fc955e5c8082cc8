"""Converters on small hand-made samples of each public format, read back as manifests."""

from __future__ import annotations

import json
import os

import pyarrow as pa
import pytest
from typer.testing import CliRunner

from vlprep.cli.manifest import app
from vlprep.jobs import convert
from vlprep.jobs.manifest import read_manifest

WEBVID_CSV = (
    "videoid,contentUrl,duration,page_dir,name\n"
    "1066674,https://ex.com/a.mp4,PT00H00M20S,016401_016450,\"Aerial, shot of a city\"\n"
    "0031,https://ex.com/b.mp4,PT00H00M10S,001_050,Cat sleeping\n"
    "1066674,https://ex.com/dup.mp4,PT00H00M20S,016401_016450,again\n"
    ",https://ex.com/noid.mp4,PT00H00M05S,001_050,no id\n"
)

HOWTO = {
    "vidA": {"start": [0.0, 2.5], "end": [2.5, 4], "text": ["first step", "second step"]},
    "vidB": {"start": [1], "end": [3], "text": ["only"]},
    "vidMissing": {"start": [0], "end": [1], "text": ["no file"]},
}

MSRVTT = {
    "info": {}, "videos": [
        {"video_id": "video0", "id": 0, "category": 9, "split": "train"},
        {"video_id": "video1", "id": 1, "category": 16, "split": "train"},
        {"video_id": "video2", "id": 2, "category": 3, "split": "test"},
    ],
    "sentences": [
        {"caption": "a car drives", "video_id": "video1", "sen_id": 0},
        {"caption": "a man talks", "video_id": "video0", "sen_id": 1},
        {"caption": "a red car drives fast", "video_id": "video1", "sen_id": 2},
    ],
}


def rows_of(path: str) -> list[dict]:
    return pa.Table.from_batches(list(read_manifest(path))).to_pylist()


@pytest.fixture
def webvid_csv(tmp_path):
    path = tmp_path / "results_2M_val.csv"
    path.write_text(WEBVID_CSV)
    return path


@pytest.mark.parametrize("out_name", ["webvid.jsonl", "webvid.parquet"])
def test_webvid(tmp_path, webvid_csv, out_name):
    out = tmp_path / "out" / out_name
    report = convert.webvid(webvid_csv, "videos", out)
    assert report == convert.ConvertReport(rows=2, skipped=2)
    rows = rows_of(str(out))
    videos = os.path.abspath("videos")
    assert [(r["video_id"], r["path"], r["caption"]) for r in rows] == [
        ("1066674", f"{videos}/016401_016450/1066674.mp4", "Aerial, shot of a city"),
        ("0031", f"{videos}/001_050/0031.mp4", "Cat sleeping"),
    ]


def test_webvid_urls_and_pattern(tmp_path, webvid_csv):
    out = tmp_path / "m.jsonl"
    convert.webvid(webvid_csv, None, out, use_urls=True)
    assert [r["path"] for r in rows_of(str(out))] == ["https://ex.com/a.mp4",
                                                      "https://ex.com/b.mp4"]
    convert.webvid(webvid_csv, "s3://bucket/webvid/", out, pattern="{videoid}.mp4")
    assert [r["path"] for r in rows_of(str(out))] == ["s3://bucket/webvid/1066674.mp4",
                                                      "s3://bucket/webvid/0031.mp4"]


def test_webvid_missing_column(tmp_path):
    path = tmp_path / "w.csv"
    path.write_text("videoid,name\n1,x\n")
    with pytest.raises(ValueError, match="missing column 'page_dir'") as info:
        convert.webvid(path, tmp_path, tmp_path / "m.jsonl")
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="missing column 'contentUrl'"):
        convert.webvid(path, None, tmp_path / "m.jsonl", use_urls=True)
    assert not (tmp_path / "m.jsonl").exists()


def _touch(path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"")


def test_howto100m(tmp_path):
    src = tmp_path / "raw_caption.json"
    src.write_text(json.dumps(HOWTO))
    videos = tmp_path / "videos"
    _touch(videos / "vidA.mp4")
    _touch(videos / "vidA.webm")  # .mp4 comes first in the preference order
    _touch(videos / "part2" / "vidB.MKV")
    _touch(videos / "notes.txt")
    out = tmp_path / "howto.jsonl"
    assert convert.howto100m(src, videos, out) == convert.ConvertReport(rows=2, skipped=1)
    rows = rows_of(str(out))
    assert [(r["video_id"], r["path"]) for r in rows] == [
        ("vidA", str(videos / "vidA.mp4")), ("vidB", str(videos / "part2" / "vidB.MKV"))]
    assert rows[0]["segments"] == [{"start": 0.0, "end": 2.5, "text": "first step"},
                                   {"start": 2.5, "end": 4.0, "text": "second step"}]
    assert rows[1]["caption"] is None


def test_howto100m_length_mismatch_names_video(tmp_path):
    src = tmp_path / "raw_caption.json"
    src.write_text(json.dumps({"vidA": {"start": [0, 1], "end": [1], "text": ["a", "b"]}}))
    _touch(tmp_path / "v" / "vidA.mp4")
    with pytest.raises(ValueError, match="video 'vidA': start, end and text have different"):
        convert.howto100m(src, tmp_path / "v", tmp_path / "m.jsonl")
    assert not (tmp_path / "m.jsonl").exists()
    assert not list(tmp_path.glob("m.jsonl.tmp*"))


def test_msrvtt(tmp_path):
    src = tmp_path / "train_val_videodatainfo.json"
    src.write_text(json.dumps(MSRVTT))
    out = tmp_path / "msrvtt.parquet"
    assert convert.msrvtt(src, tmp_path / "vids", out) == convert.ConvertReport(rows=3)
    rows = rows_of(str(out))
    assert [r["video_id"] for r in rows] == ["video0", "video1", "video2"]
    assert rows[0]["path"] == str(tmp_path / "vids" / "video0.mp4")
    assert rows[1]["caption"] == "a car drives"
    assert rows[1]["captions"] == ["a car drives", "a red car drives fast"]
    assert rows[2]["caption"] is None and rows[2]["captions"] is None


def test_converter_bad_inputs(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        convert.msrvtt(tmp_path / "nope.json", tmp_path, tmp_path / "m.jsonl")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="invalid JSON"):
        convert.howto100m(tmp_path / "bad.json", tmp_path, tmp_path / "m.jsonl")
    (tmp_path / "novideos.json").write_text("{}")
    with pytest.raises(ValueError, match="'videos' list"):
        convert.msrvtt(tmp_path / "novideos.json", tmp_path, tmp_path / "m.jsonl")


runner = CliRunner()


def test_cli_webvid(tmp_path, webvid_csv):
    out = tmp_path / "m.jsonl"
    result = runner.invoke(app, ["webvid", str(webvid_csv), "--videos", str(tmp_path),
                                 "--out", str(out), "--pattern", "{videoid}.mp4"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote 2 rows to {out} (2 skipped)"
    assert rows_of(str(out))[1]["path"] == str(tmp_path / "0031.mp4")
    result = runner.invoke(app, ["webvid", str(webvid_csv), "--use-urls", "--out", str(out)])
    assert result.exit_code == 0, result.output


def test_cli_howto100m_and_msrvtt(tmp_path):
    (tmp_path / "raw.json").write_text(json.dumps(HOWTO))
    _touch(tmp_path / "v" / "vidB.webm")
    out = tmp_path / "h.jsonl"
    result = runner.invoke(app, ["howto100m", str(tmp_path / "raw.json"), "--videos",
                                 str(tmp_path / "v"), "--out", str(out), "--ext", ".webm"])
    assert result.exit_code == 0, result.output
    assert "wrote 1 rows" in result.stdout and "(2 skipped)" in result.stdout
    (tmp_path / "msr.json").write_text(json.dumps(MSRVTT))
    result = runner.invoke(app, ["msrvtt", str(tmp_path / "msr.json"), "--videos",
                                 str(tmp_path / "v"), "--out", str(tmp_path / "m.jsonl")])
    assert result.exit_code == 0, result.output
    assert "wrote 3 rows" in result.stdout


def test_cli_errors_exit_2_with_one_line(tmp_path):
    result = runner.invoke(app, ["msrvtt", str(tmp_path / "nope.json"), "--videos",
                                 str(tmp_path), "--out", str(tmp_path / "m.jsonl")])
    assert result.exit_code == 2
    assert result.stderr.strip().count("\n") == 0
    assert "no such file" in result.stderr
    result = runner.invoke(app, ["webvid", str(tmp_path / "w.csv"), "--out", "m.jsonl"])
    assert result.exit_code == 2 and "--videos" in result.stderr
