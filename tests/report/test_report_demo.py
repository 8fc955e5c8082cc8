"""`vlprep report` on the real demo store, opened in headless Chromium.

The report is built once (module fixture); the browser checks that every card is there,
every image loads, the page is not blank and the drawn boxes are the `regions` rows; the
pixels of the re-decoded frames are checked against an independent decode and against the
stored CLIP embeddings themselves.
"""

from __future__ import annotations

import io
import re
from collections import defaultdict
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest
from media import resize_crop
from PIL import Image
from report_browser import chromium, missing


def rows(store: Path, table: str) -> list[dict]:
    return ds.dataset(str(store / table), format="parquet").to_table().to_pylist()


@pytest.fixture(scope="module")
def report(demo_store: Path, tmp_path_factory: pytest.TempPathFactory):
    from vlprep.report import build_report

    return build_report(str(demo_store), tmp_path_factory.mktemp("report"), videos=8, seed=0)


def figures(html: str, kind: str) -> dict[str, list[dict[str, str]]]:
    """Per card, the data attributes of the figures of one section kind, in page order."""
    out: dict[str, list[dict[str, str]]] = {}
    for card in re.findall(r"<div class='card[^']*' id='card-[^']*' data-video-id='([^']*)'"
                           r"(.*?)(?=<div class='card|</body>)", html, re.S):
        vid, body = card
        section = re.search(rf"data-kind='{kind}'>(.*?)</div></div>", body, re.S)
        out[vid] = [] if section is None else [
            dict(re.findall(r'data-([\w-]+)="([^"]*)"', attrs))
            for attrs in re.findall(r"<figure([^>]*)>", section.group(1))]
    return out


def test_report_opens_in_chromium(report, demo_store: Path, tmp_path: Path) -> None:
    reason = missing()
    if reason:
        pytest.skip(reason)
    videos = sorted(r["video_id"] for r in rows(demo_store, "videos"))
    with chromium() as browser:
        browser.get(report.index.resolve().as_uri())
        cards = browser.execute_script(
            "return [...document.querySelectorAll('.card')].map(c => c.dataset.videoId)")
        assert sorted(cards) == videos
        images = browser.execute_script(
            "return [...document.images].map(i => [i.getAttribute('src'), i.complete, "
            "i.naturalWidth])")
        assert len(images) > 4 * 8
        broken = [src for src, complete, width in images if not complete or width == 0]
        assert not broken, broken
        assert all(not src.startswith(("http:", "https:", "//")) for src, _, _ in images)
        drawn = browser.execute_script(
            "return [...document.querySelectorAll('.card')].map(c => [c.dataset.videoId, "
            "[...c.querySelectorAll('.detect figure')].map(f => [+f.dataset.frameIndex, "
            "+f.dataset.boxes])])")
        shot = Image.open(io.BytesIO(browser.get_screenshot_as_png())).convert("RGB")
    pixels = np.asarray(shot)
    assert pixels.std() > 20 and len(np.unique(pixels.reshape(-1, 3), axis=0)) > 200
    regions: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for r in sorted(rows(demo_store, "regions"), key=lambda r: (r["video_id"], r["sample_rank"])):
        regions[r["video_id"]].append((r["frame_index"], len(r["boxes"])))
    assert {vid: [tuple(f) for f in frames] for vid, frames in drawn} == dict(regions)


def test_cards_draw_the_stored_rows(report, demo_store: Path) -> None:
    html = report.index.read_text()
    assert "MISMATCH" not in html and "could not re-decode" not in html
    tracks: dict[str, list[dict]] = defaultdict(list)
    for r in rows(demo_store, "trajectories"):
        tracks[r["video_id"]].append(r)
    for vid, frames in figures(html, "trajectories").items():
        present = np.array([r["mask"] for r in tracks[vid]], bool).sum(axis=0)
        assert [int(f["objects"]) for f in frames] == present.tolist()
    crops: dict[str, list[dict]] = defaultdict(list)
    for r in rows(demo_store, "soft_labels"):
        crops[r["video_id"]].append(r)
    for vid, frames in figures(html, "prompter").items():
        assert [int(f["frame-index"]) for f in frames] == crops[vid][0]["frame_indices"]
        assert {int(f["crops"]) for f in frames} == {len(crops[vid])}
    texts = [t for card in report.cards for t in card.texts]
    assert len(texts) == len(rows(demo_store, "texts"))
    assert all(t["how"] == "clip_pos" for t in texts)  # the demo tokenizer aligns
    assert sum(t["noun_marks"] for t in texts) >= sum(len(set(t["nouns"])) > 0 for t in texts)
    assert "RANDOM WEIGHTS" in html and "id='health-ok'" in html


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)



def test_redecoded_frames_are_the_frames_the_features_came_from(report, demo_store: Path
                                                                ) -> None:
    from vlprep.stages.base import Resources
    from vlprep.stages.clip import ClipStage
    from vlprep.stages.decode import decode_frames
    from vlprep.stages.frames import SampledFrames
    from vlprep.stages.record import outputs

    stored = defaultdict(list)
    for r in sorted(rows(demo_store, "clip_frames"), key=lambda r: r["sample_rank"]):
        stored[r["video_id"]].append(r)
    paths = {r["video_id"]: r["path"] for r in rows(demo_store, "videos")}
    shown = {}
    for card in report.cards:
        section = next(s for s in card.sections if s.kind == "clip")
        indices = [int(p.attrs["frame-index"]) for p in section.pictures]
        assert indices == [r["frame_index"] for r in stored[card.video_id]]  # same indices
        frames = np.stack([np.asarray(Image.open(report.index.parent / p.src))
                           for p in section.pictures])
        shown[card.video_id] = frames
        # pixels: an independent decode (PyAV, the store's CLIP frames came from decord)
        around = sorted({j for i in indices for j in (i - 1, i, i + 1) if j >= 0})
        count = next(r for r in rows(demo_store, "videos") if r["video_id"] == card.video_id)
        around = [j for j in around if j < count["frame_count"]]
        ref = dict(zip(around, (resize_crop(f, frames.shape[1]) for f in
                                decode_frames(paths[card.video_id], around, "pyav")),
                       strict=True))
        for frame, i in zip(frames, indices, strict=True):
            scores = {j: psnr(frame, ref[j]) for j in (i - 1, i, i + 1) if j in ref}
            assert scores[i] >= 35, (card.video_id, i, scores)
            assert scores[i] >= max(scores.values()) - 1e-9, (card.video_id, i, scores)
    # the stored embeddings are CLIP's of exactly these pixels: the recipe's CLIP stage, run
    # as the pipeline runs it (a record with sampled frames in, rows out), on 2 shown frames
    recipe = next(s for s in report.summary.recipe["stages"] if s["kind"] == "clip")
    stage = ClipStage(ClipStage.Options.model_validate(recipe["options"]), Resources(), "clip")
    vid = sorted(shown)[0]
    first = stored[vid][:2]
    record = {"video_id": vid, "path": paths[vid], recipe["options"].get("frames", "frames"):
              SampledFrames(frames=shown[vid][:2],
                            indices=np.array([r["frame_index"] for r in first], np.int64),
                            times=np.array([r["time"] for r in first], np.float32))}
    stage([record])
    embeddings = np.array(outputs(record)["clip_frames"].column("embedding").to_pylist(),
                          np.float32)
    expected = np.array([r["embedding"] for r in first], np.float32)
    np.testing.assert_allclose(embeddings, expected, atol=2e-3)
