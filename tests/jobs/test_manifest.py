"""read_manifest: every format, path resolution, streaming, and one-line errors."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
from functools import partial
from types import SimpleNamespace

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import vlprep.jobs.idset as idset
import vlprep.jobs.manifest as manifest
from vlprep.jobs.idset import IdSet
from vlprep.jobs.manifest import ManifestError, manifest_fingerprint, read_manifest
from vlprep.schemas.manifest import MANIFEST

SEGS = [{"start": 0.0, "end": 1.5, "text": "hello"}, {"start": 1.5, "end": 3, "text": "world"}]
ROWS = [
    {"video_id": "007", "path": "clips/a.mp4", "caption": "a dog", "segments": SEGS},
    {"video_id": "42", "path": "/abs/b.mp4", "caption": "a cat"},
    {"video_id": "c", "path": "s3://bucket/c.mp4", "captions": ["one", "two"]},
    {"video_id": "d", "path": "d.mp4"},
    {"video_id": "e", "path": "../e.mp4", "caption": ""},
]


def _csv_cell(value: object) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value)
    return '"' + text.replace('"', '""') + '"'


def write_csv(path: os.PathLike[str], rows: list[dict], extra: bool = True) -> None:
    cols = ["video_id", "path", "caption", "captions", "segments"]
    lines = [",".join(cols + (["junk"] if extra else []))]
    for i, row in enumerate(rows):
        cells = [_csv_cell(row.get(c)) for c in cols] + ([str(i)] if extra else [])
        lines.append(",".join(cells))
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def write_jsonl(path: os.PathLike[str], rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")


def write_parquet(path: os.PathLike[str], rows: list[dict]) -> None:
    full = [{**{c: None for c in MANIFEST.names}, **r} for r in rows]
    pq.write_table(pa.Table.from_pylist(full, schema=MANIFEST), path)


def read_all(uri: str, **kw: int) -> list[dict]:
    batches = list(read_manifest(uri, **kw))
    assert all(b.schema.equals(MANIFEST) for b in batches)
    return pa.Table.from_batches(batches, schema=MANIFEST).to_pylist()


def expected(base: str) -> list[dict]:
    return [
        {"video_id": "007", "path": os.path.join(base, "clips/a.mp4"), "caption": "a dog",
         "captions": None,
         "segments": [{"start": 0.0, "end": 1.5, "text": "hello"},
                      {"start": 1.5, "end": 3.0, "text": "world"}]},
        {"video_id": "42", "path": "/abs/b.mp4", "caption": "a cat", "captions": None,
         "segments": None},
        {"video_id": "c", "path": "s3://bucket/c.mp4", "caption": "one",
         "captions": ["one", "two"], "segments": None},
        {"video_id": "d", "path": os.path.join(base, "d.mp4"), "caption": None,
         "captions": None, "segments": None},
        {"video_id": "e", "path": os.path.join(os.path.dirname(base), "e.mp4"), "caption": None,
         "captions": None, "segments": None},
    ]


@pytest.mark.parametrize("name", ["m.csv", "m.jsonl", "m.ndjson", "m.parquet", "m.pq",
                                  "m.csv.gz", "m.jsonl.gz"])
def test_each_format_reads_back(tmp_path, name):
    path = tmp_path / name
    plain = tmp_path / ("plain." + name.split(".")[1])
    writer = {"csv": write_csv, "jsonl": write_jsonl, "ndjson": write_jsonl,
              "parquet": write_parquet, "pq": write_parquet}[name.split(".")[1]]
    if name.endswith(".gz"):
        writer(plain, ROWS)
        path.write_bytes(gzip.compress(plain.read_bytes()))
    else:
        writer(path, ROWS)
    assert read_all(str(path)) == expected(str(tmp_path))


@pytest.mark.parametrize("writer,ext", [(write_csv, "csv"), (write_jsonl, "jsonl"),
                                        (write_parquet, "parquet")])
def test_small_batches_give_same_rows(tmp_path, writer, ext):
    path = tmp_path / f"m.{ext}"
    writer(path, ROWS)
    batches = list(read_manifest(str(path), batch_rows=2))
    assert [b.num_rows for b in batches] == [2, 2, 1]
    assert pa.Table.from_batches(batches).to_pylist() == read_all(str(path))


def test_numeric_ids_stay_strings(tmp_path):
    csv = tmp_path / "m.csv"
    csv.write_text("video_id,path,score\n001,a.mp4,1\n2,b.mp4,x\n1e3,c.mp4,2\n")
    assert [r["video_id"] for r in read_all(str(csv))] == ["001", "2", "1e3"]
    jl = tmp_path / "m.jsonl"
    jl.write_text('{"video_id": 5, "path": "a.mp4"}\n\n{"video_id": "05", "path": "b.mp4"}\n')
    assert [r["video_id"] for r in read_all(str(jl))] == ["5", "05"]
    pqf = tmp_path / "m.parquet"
    pq.write_table(pa.table({"video_id": [1, 2], "path": ["a", "b"]}), pqf)
    assert [r["video_id"] for r in read_all(str(pqf))] == ["1", "2"]


def test_relative_paths_resolve_against_manifest_dir(tmp_path, monkeypatch):
    sub = tmp_path / "data"
    sub.mkdir()
    write_jsonl(sub / "m.jsonl", [{"video_id": "a", "path": "v/a.mp4"},
                                  {"video_id": "b", "path": "file:///x/b.mp4"},
                                  {"video_id": "c", "path": "http://h/c.mp4"}])
    monkeypatch.chdir(tmp_path)
    paths = [r["path"] for r in read_all("data/m.jsonl")]
    assert paths == [str(sub / "v" / "a.mp4"), "file:///x/b.mp4", "http://h/c.mp4"]
    assert os.path.isabs(paths[0])


def test_uri_manifest_via_fsspec_and_file_scheme(tmp_path):
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    with fs.open("/vl/set/m.jsonl", "w") as f:
        f.write('{"video_id": "a", "path": "v/a.mp4"}\n{"video_id": "b", "path": "/b.mp4"}\n')
    assert [r["path"] for r in read_all("memory://vl/set/m.jsonl")] == [
        "memory://vl/set/v/a.mp4", "/b.mp4"]
    write_csv(tmp_path / "m.csv", ROWS)
    assert read_all(f"file://{tmp_path}/m.csv") == expected(str(tmp_path))


def _one_line_error(uri: str) -> str:
    with pytest.raises(ManifestError) as info:
        list(read_manifest(uri))
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"manifest {uri}")
    return message


def test_missing_file(tmp_path):
    uri = str(tmp_path / "nope.csv")
    with pytest.raises(ManifestError, match="no such file"):
        read_manifest(uri)  # raises before iteration
    assert _one_line_error(uri).endswith(": no such file")
    with pytest.raises(ManifestError, match="no such file"):
        manifest_fingerprint(uri)


def test_unknown_format(tmp_path):
    (tmp_path / "m.txt").write_text("x")
    assert "unknown format" in _one_line_error(str(tmp_path / "m.txt"))


@pytest.mark.parametrize("ext", ["csv", "parquet"])
def test_missing_required_column(tmp_path, ext):
    path = tmp_path / f"m.{ext}"
    if ext == "csv":
        path.write_text("video_id,caption\na,b\n")
    else:
        pq.write_table(pa.table({"video_id": ["a"], "caption": ["b"]}), path)
    assert _one_line_error(str(path)).endswith(": missing required column 'path'")


def test_missing_field_in_jsonl_names_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"video_id": "a", "path": "a"}\n{"video_id": "b"}\n')
    assert _one_line_error(str(path)).endswith(" line 2: missing required column 'path'")


def test_empty_required_value(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("video_id,path\na,a.mp4\n,b.mp4\n")
    assert _one_line_error(str(path)).endswith(" row 2: empty video_id")
    path.write_text("video_id,path\na,\n")
    assert _one_line_error(str(path)).endswith(" row 1: empty path")


@pytest.mark.parametrize("writer,ext,unit", [(write_csv, "csv", "rows 2 and 4"),
                                             (write_jsonl, "jsonl", "lines 2 and 4"),
                                             (write_parquet, "parquet", "rows 2 and 4")])
def test_duplicate_video_id(tmp_path, writer, ext, unit):
    rows = [{"video_id": v, "path": "x.mp4"} for v in ["a", "dup", "b", "dup"]]
    writer(tmp_path / f"m.{ext}", rows)
    message = _one_line_error(str(tmp_path / f"m.{ext}"))
    assert message.endswith(f": duplicate video_id 'dup' ({unit})")


def test_duplicate_detected_across_batches(tmp_path):
    write_jsonl(tmp_path / "m.jsonl", [{"video_id": v, "path": "x"} for v in "abcda"])
    with pytest.raises(ManifestError, match="duplicate video_id 'a'"):
        list(read_manifest(str(tmp_path / "m.jsonl"), batch_rows=2))


def test_idset_finds_first_location_after_freezes_and_merges():
    ids = IdSet(freeze_at=4)
    keys = [f"v{i}" for i in range(49)] + ["\ud800"]  # a lone surrogate still hashes
    for i, key in enumerate(keys):
        assert ids.setdefault(key, 100 + i) == 100 + i
    assert len(ids) == 50 and len(ids.recent) == 2
    assert len(ids.runs) <= 6 and max(len(run[0]) for run in ids.runs) > 4  # merged
    for i, key in enumerate(keys):
        assert ids.setdefault(key, 999) == 100 + i
    assert len(ids) == 50


def test_idset_digests_sharing_the_high_half(monkeypatch):
    # every digest gets hi == 0 (and so ends its first half in NULs): lookups scan ties on lo
    def blake2b(data: bytes, digest_size: int) -> SimpleNamespace:
        low = hashlib.blake2b(data, digest_size=8).digest()
        return SimpleNamespace(digest=lambda: bytes(8) + low)

    monkeypatch.setattr(idset, "hashlib", SimpleNamespace(blake2b=blake2b))
    ids = IdSet(freeze_at=3)
    for i in range(20):
        assert ids.setdefault(str(i), i) == i
    assert [ids.setdefault(str(i), -1) for i in range(20)] == list(range(20))


def test_idset_no_false_duplicates():
    ids = IdSet(freeze_at=7)
    assert all(ids.setdefault(f"id-{i}", i) == i for i in range(20_000))
    assert len(ids) == 20_000


def test_idset_memory_per_id_is_small():
    ids = IdSet(freeze_at=1000)
    for i in range(100_000):
        ids.setdefault(f"video/{i:09d}", i)
    assert not ids.recent and len(ids) == 100_000
    assert ids.nbytes / len(ids) <= 32


def test_duplicate_after_many_freezes_stops_at_that_line(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest, "IdSet", partial(IdSet, freeze_at=4))
    rows = [{"video_id": f"v{i}", "path": "x"} for i in range(50)]
    path = tmp_path / "m.jsonl"
    write_jsonl(path, rows + [{"video_id": "v7", "path": "x"}])
    with open(path, "a", encoding="utf-8") as f:
        f.write("not json\n")  # never read: the duplicate on line 51 stops the stream
    message = _one_line_error(str(path))
    assert message.endswith(": duplicate video_id 'v7' (lines 8 and 51)")


@pytest.mark.parametrize("segments,problem", [
    ("[{\"start\": 0, \"end\": 1, \"text\": \"x\"", "segments is not valid JSON"),
    ('{"start": 0}', "segments must be a list"),
    ('[{"start": 2, "end": 1, "text": "x"}]', "segments[0]: start 2 > end 1"),
    ('[{"start": "0", "end": 1, "text": "x"}]', "segments[0]: start and end must be numbers"),
    ('[{"start": 0, "end": 1, "text": "x"}, {"start": 0, "end": 1}]',
     "segments[1]: text must be a string"),
])
def test_bad_segments_name_the_row(tmp_path, segments, problem):
    path = tmp_path / "m.csv"
    write_csv(path, [{"video_id": "a", "path": "a"}, {"video_id": "b", "path": "b",
                                                      "segments": segments}])
    message = _one_line_error(str(path))
    assert " row 2: " in message and problem in message


def test_bad_captions_and_bad_json_line(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"video_id": "a", "path": "a", "captions": ["x", 1]}\n')
    assert _one_line_error(str(path)).endswith("line 1: captions must be a list of strings")
    path.write_text('{"video_id": "a", "path": "a"}\n{"video_id": \n')
    assert " line 2: invalid JSON" in _one_line_error(str(path))


@pytest.mark.parametrize("content", ["", "video_id,path\n"])
def test_empty_manifest(tmp_path, content):
    path = tmp_path / "m.csv"
    path.write_text(content)
    assert "no rows" in _one_line_error(str(path))


def test_empty_jsonl_and_parquet(tmp_path):
    (tmp_path / "m.jsonl").write_text("\n")
    assert "no rows" in _one_line_error(str(tmp_path / "m.jsonl"))
    write_parquet(tmp_path / "m.parquet", [])
    assert "no rows" in _one_line_error(str(tmp_path / "m.parquet"))


def test_malformed_csv_is_one_line(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("video_id,path\na,b,c,d\n")
    assert "cannot read csv" in _one_line_error(str(path))


def test_fingerprint_is_sha256_of_bytes(tmp_path):
    path = tmp_path / "m.jsonl.gz"
    data = gzip.compress(b'{"video_id": "a", "path": "a"}\n')
    path.write_bytes(data)
    assert manifest_fingerprint(str(path)) == hashlib.sha256(data).hexdigest()
