"""`vlprep import vinvl`: VinVL's TSVs (as `export vinvl` and scene_graph_benchmark write
them) back into `regions`, exactly once."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from export_fake_store import EXPORTED_NAMES, REGION_DIM, read_table, write_store
from typer.testing import CliRunner

from vlprep.cli.app import app
from vlprep.errors import ExportError
from vlprep.export.vinvl import export_vinvl
from vlprep.export.vinvl_import import import_vinvl


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("vinvl-import")
    store = write_store(root)
    export_vinvl(str(store), str(root / "out"))
    return store, root / "out"


def rows_by_frame(store: Path) -> dict[tuple[str, int], dict]:
    return {(r["video_id"], r["sample_rank"]): r for r in read_table(store, "regions").to_pylist()}


def test_round_trip_and_exactly_once(exported, tmp_path):
    store, out = exported
    target = tmp_path / "imported"
    report = import_vinvl(str(out / "predictions.tsv"), str(out / "predictions.feature.tsv"),
                          str(target), partition_size=3, feature_dim=REGION_DIM)
    original, back = rows_by_frame(store), rows_by_frame(target)
    assert report.frames == len(original) == len(back) and report.units == 3
    for key, want in original.items():
        got = back[key]
        for column in ("frame_index", "width", "height", "classes"):
            assert got[column] == want[column], column
        assert got["class_names"] == [EXPORTED_NAMES[c] for c in want["classes"]]  # unique
        assert got["time"] == pytest.approx(want["time"])
        np.testing.assert_allclose(got["boxes"], want["boxes"], rtol=1e-6)
        np.testing.assert_allclose(got["scores"], want["scores"], rtol=1e-6)
        np.testing.assert_array_equal(np.array(got["features"], np.float16),
                                      np.array(want["features"], np.float16))
        np.testing.assert_allclose(got["geometry"], want["geometry"], rtol=1e-6)
        if want["attr_ids"] is None:
            assert got["attr_ids"] == [[] for _ in want["scores"]]
        else:
            assert got["attr_ids"] == want["attr_ids"]
            assert got["attr_names"] == want["attr_names"]
    again = import_vinvl(str(out / "predictions.tsv"), str(out / "predictions.feature.tsv"),
                         str(target), partition_size=3, feature_dim=REGION_DIM)
    assert (again.units, again.skipped) == (0, 3)
    assert read_table(target, "regions").num_rows == len(original)
    recipe = json.loads((target / "_recipe.json").read_text())
    assert recipe["stages"][0]["options"]["architecture"] == "vinvl_x152c4"
    with pytest.raises(ExportError, match="already has `regions` from a detect stage"):
        import_vinvl(str(out / "predictions.tsv"), str(out / "predictions.feature.tsv"),
                     str(store), feature_dim=REGION_DIM)


def test_cli_and_refusals(exported, tmp_path):
    _, out = exported
    runner = CliRunner()
    result = runner.invoke(app, ["import", "vinvl", str(out / "predictions.tsv"),
                                 str(out / "predictions.feature.tsv"), "--store",
                                 str(tmp_path / "s"), "--feature-dim", str(REGION_DIM)])
    assert result.exit_code == 0, result.output
    assert "vinvl import:" in result.output
    result = runner.invoke(app, ["import", "vinvl", str(out / "predictions.tsv"),
                                 str(out / "predictions.feature.tsv"), "--store",
                                 str(tmp_path / "t"), "--feature-dim", "7"])
    assert result.exit_code == 2 and "features of width" in result.output
    assert len(result.output.strip().splitlines()) == 1
    with pytest.raises(ExportError, match="label map"):
        import_vinvl(str(out / "predictions.tsv"), str(out / "predictions.feature.tsv"),
                     str(tmp_path / "u"), label_map=str(tmp_path / "none.json"))
