"""The backbone template on the README's worked example (Adding a stage): a new backbone is
its options, `load` and `rows`; batching, splitting per video and the contract come free."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from vlprep.stages.base import OUTPUTS, Resources
from vlprep.stages.frames import SampledFrames

README = Path(__file__).parents[2] / "README.md"


def _example() -> dict:
    text = README.read_text()
    code = re.search(r"```python\n(# vlprep/stages/colour.py.*?)```", text, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "README colour example", "exec"), namespace)  # noqa: S102 - our README
    return namespace


def _record(video_id: str, n: int, value: int) -> dict:
    frames = np.full((n, 4, 4, 3), value, np.uint8)
    frames[..., 2] = 0
    return {"video_id": video_id, "partition": 0, "frames": SampledFrames(
        frames=frames, indices=np.arange(n, dtype=np.int64) * 3,
        times=np.arange(n, dtype=np.float32))}


def test_readme_example_stage_batches_and_splits_per_video():
    ns = _example()
    stage_cls, schema = ns["ColourStage"], ns["COLOURS"]
    assert stage_cls.kind == "colour" and stage_cls.tables == ("colours",)
    assert stage_cls.Options is ns["ColourOptions"] and stage_cls.stateful
    assert stage_cls.default_resources.batch_size == 4
    stage = stage_cls(ns["ColourOptions"](init="random", device="cpu"), Resources())
    batch = [_record("a", 3, 10), _record("b", 2, 200)]
    stage(batch)
    for record, value in zip(batch, (10, 200), strict=True):
        table = record[OUTPUTS]["colours"]
        assert table.schema.equals(schema)
        assert table.column("frame_index").to_pylist() == record["frames"].indices.tolist()
        assert table.column("colour").to_pylist() == [[value, value, 0]] * len(
            record["frames"])
    contract = stage_cls.contract(ns["ColourOptions"](init="random", frames="mine"))
    assert contract.reads == ("mine",) and contract.tables == ("colours",)
    assert ns["ColourOptions"].speed_options() == {"frame_batch", "device", "sha256"}


def test_rows_by_column_name_refuse_a_missing_column():
    from vlprep.stages.backbone import table_of

    schema = _example()["COLOURS"]
    with pytest.raises(KeyError, match=r"missing \['colour'\]"):
        table_of(schema, {"video_id": pa.array(["a"]), "frame_index": pa.array([0], pa.int32())})
