"""Per-video cards: what the pipeline extracted, drawn on the frames it came from.

Videos: `n` drawn with a seeded generator among the videos without errors, plus every video
with an error (up to ``MAX_ERROR_CARDS``). Each card's rows are read from the video's own
input partition; its frames are re-decoded with the store's recipe (:mod:`.frames`).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from vlprep.report import drawing
from vlprep.report.drawing import Assets
from vlprep.report.frames import FrameDecoder, FrameSource, frame_sources
from vlprep.report.source import ReportSource
from vlprep.report.texts import TextMarker

MAX_ERROR_CARDS = 20
TABLES = ("videos", "errors", "clip_frames", "regions", "trajectories", "soft_labels", "texts",
          "s3d")
COLUMNS = {"clip_frames": ["frame_index", "time", "sample_rank"],
           "regions": ["frame_index", "time", "sample_rank", "width", "height", "boxes",
                       "class_names", "scores"],
           "s3d": ["num_windows", "features"]}


@dataclass
class Picture:
    src: str
    caption: str
    attrs: dict[str, str] = field(default_factory=dict)


@dataclass
class Section:
    kind: str  # clip | detect | trajectories | prompter | s3d
    title: str
    pictures: list[Picture] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # warnings, loud
    legend: list[tuple[str, str]] = field(default_factory=list)  # (colour css, text)


@dataclass
class Card:
    video_id: str
    path: str
    facts: dict[str, Any]
    errors: list[dict[str, str]]
    sections: list[Section] = field(default_factory=list)
    texts: list[dict[str, Any]] = field(default_factory=list)  # source, times, html spans


def pick_videos(src: ReportSource, failed: dict[str, list[str]], n: int, seed: int
                ) -> list[tuple[str, str, int]]:
    """(video_id, path, partition) of the videos to show: `n` drawn uniformly (a seeded
    reservoir over the committed partitions, read one at a time), then the failed ones."""
    done = sorted(int(c.unit[5:]) for c in src.store.commits() if c.unit.startswith("part-"))
    rng = random.Random(seed)
    picked: list[tuple[str, str, int]] = []
    bad: list[tuple[str, str, int]] = []
    seen = 0
    for pid in done:
        part = src.inputs_of(pid)
        for vid, path in zip(part.column("video_id").to_pylist(),
                             part.column("path").to_pylist(), strict=True):
            if vid in failed:
                if len(bad) < MAX_ERROR_CARDS:
                    bad.append((vid, path, pid))
                continue
            seen += 1
            if len(picked) < n:
                picked.append((vid, path, pid))
            elif (j := rng.randrange(seen)) < n:
                picked[j] = (vid, path, pid)
    return sorted(picked, key=lambda r: (r[2], r[0])) + bad


def _by_video(table: pa.Table | None) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    if table is None:
        return out
    for row in table.to_pylist():
        out.setdefault(row["video_id"], []).append(row)
    return out


class CardMaker:
    def __init__(self, src: ReportSource, assets: Assets):
        self.src, self.assets = src, assets
        self.sources = frame_sources(src.recipe)
        self.decoder = FrameDecoder()
        self.texts = TextMarker(src.recipe)
        self.entities = self._entities()

    def _entities(self) -> dict[int, str]:
        data = self.src.read_small("entities", ["rank", "lemma"]) \
            if "entities" in self.src.tables() else None
        if data is None:
            return {}
        return dict(zip(data.column("rank").to_pylist(), data.column("lemma").to_pylist(),
                        strict=True))

    def rows(self, partition: int, ids: set[str]) -> dict[str, dict[str, list[dict]]]:
        """table -> video -> rows, for the picked videos of one partition."""
        key = f"{partition:06d}"
        have = set(self.src.tables())
        out = {}
        for table in TABLES:
            if table in have:
                out[table] = _by_video(self.src.video_rows(key, table, ids, COLUMNS.get(table)))
        return out

    def card(self, video_id: str, path: str, rows: dict[str, dict[str, list[dict]]]) -> Card:
        def of(table: str) -> list[dict]:
            return rows.get(table, {}).get(video_id, [])

        facts = (of("videos") or [{}])[0]
        card = Card(video_id, facts.get("path") or path,
                    {k: facts.get(k) for k in ("duration", "fps", "frame_count", "width",
                                               "height", "codec") if k in facts},
                    [{"stage": e["stage"], "error": e["error"], "path": e.get("path") or ""}
                     for e in of("errors")])
        rotation = facts.get("rotation")
        if "clip" in self.sources:
            card.sections.append(self.clip_section(card, rotation, of("clip_frames")))
        if "detect" in self.sources:
            frames, note = self.frames(self.sources["detect"], card, rotation,
                                       [r["frame_index"] for r in
                                        sorted(of("regions"), key=lambda r: r["sample_rank"])])
            card.sections.append(self.detect_section(frames, note, of("regions")))
            if "trajectories" in rows:
                card.sections.append(self.track_section(frames, note, of("trajectories")))
        if "prompter" in self.sources and "soft_labels" in rows:
            labels = sorted(of("soft_labels"), key=lambda r: r["crop"])
            expected = labels[0]["frame_indices"] if labels else []
            frames, note = self.frames(self.sources["prompter"], card, rotation, expected)
            card.sections.append(self.prompter_section(frames, note, labels))
        if of("s3d"):
            card.sections.append(self.s3d_section(of("s3d")[0]))
        card.texts = [self.texts.mark(r) for r in sorted(of("texts"), key=lambda r: r["segment"])]
        return card

    # frames ------------------------------------------------------------------------------
    def frames(self, source: FrameSource, card: Card, rotation: int | None,
               expected: list[int]) -> tuple[Any, str | None]:
        """Re-decoded frames, and a loud note when they are not the rows' frames. A failed
        video with no rows here is not decoded again (it may be the one that hangs)."""
        if not expected and card.errors:
            stages = ", ".join(sorted({e["stage"] for e in card.errors}))
            return None, f"no rows from {source.reader}: the video failed ({stages})"
        try:
            sampled = self.decoder.decode(source, card.video_id, card.path, rotation)
        except Exception as e:  # noqa: BLE001 - a bad video: its card says why
            return None, f"could not re-decode the frames of {source.sample_name}: {e}"
        got = [int(i) for i in sampled.indices]
        if expected and got != [int(i) for i in expected]:
            return sampled, (f"MISMATCH: re-decoded frame indices {got} differ from the "
                             f"stored ones {list(expected)}")
        return sampled, None

    def clip_section(self, card: Card, rotation: int | None, rows: list[dict]) -> Section:
        rows = sorted(rows, key=lambda r: r["sample_rank"])
        src = self.sources["clip"]
        section = Section("clip", f"CLIP frames ({src.sample_name}: "
                                  f"{src.options.get('sampler')}, {len(rows)} rows)")
        sampled, note = self.frames(src, card, rotation, [r["frame_index"] for r in rows])
        if note:
            section.notes.append(note)
        if sampled is not None:
            for i, frame in enumerate(sampled.frames):
                rel = self.assets.save_image(drawing.frame_image(frame), f"{card.video_id}-clip")
                section.pictures.append(Picture(rel, f"#{int(sampled.indices[i])} "
                                                f"{float(sampled.times[i]):.2f}s",
                                                {"frame-index": str(int(sampled.indices[i]))}))
        return section

    def detect_section(self, sampled, note: str | None, rows: list[dict]) -> Section:
        rows = sorted(rows, key=lambda r: r["sample_rank"])
        section = Section("detect", f"detector boxes ({sum(len(r['boxes']) for r in rows)} "
                                    f"on {len(rows)} frames)")
        if note:
            section.notes.append(note)
        if sampled is None:
            return section
        for row in rows:
            rank = int(row["sample_rank"])
            if rank >= len(sampled):
                section.notes.append(f"regions row with sample_rank {rank}: no such frame")
                continue
            boxes = np.asarray(row["boxes"], np.float32).reshape(-1, 4)
            labels = [f"{n} {s:.2f}" for n, s in zip(row["class_names"], row["scores"],
                                                     strict=True)]
            image, drawn = drawing.draw_boxes(sampled.frames[rank], boxes, labels)
            rel = self.assets.save_image(image, "detect")
            section.pictures.append(Picture(
                rel, f"#{row['frame_index']} {row['time']:.2f}s, {drawn} boxes",
                {"frame-index": str(row["frame_index"]), "boxes": str(drawn),
                 "video-id": row["video_id"]}))
        return section

    def track_section(self, sampled, note: str | None, rows: list[dict]) -> Section:
        rows = sorted(rows, key=lambda r: r["trajectory"])
        section = Section("trajectories", f"trajectories ({len(rows)} objects, one colour each)")
        if note:
            section.notes.append(note)
        if sampled is None or not rows:
            return section
        boxes = np.array([r["boxes"] for r in rows], np.float32)
        mask = np.array([r["mask"] for r in rows], bool)
        scale = sampled.frames.shape[2] / float(rows[0]["frame_size"] or sampled.frames.shape[2])
        names = [r["class_name"] for r in rows]
        images, counts = drawing.draw_tracks(list(sampled.frames), boxes, mask, names, scale)
        for f, (image, n) in enumerate(zip(images, counts, strict=True)):
            rel = self.assets.save_image(image, "track")
            section.pictures.append(Picture(rel, f"#{int(sampled.indices[f])}, {n} objects",
                                            {"frame-index": str(int(sampled.indices[f])),
                                             "objects": str(n)}))
        section.legend = [(_css(drawing.colour(t)), f"{t}: {r['class_name']} "
                           f"(conf {r['confidence']:.2f})") for t, r in enumerate(rows)]
        return section

    def prompter_section(self, sampled, note: str | None, rows: list[dict]) -> Section:
        section = Section("prompter", f"prompter crops ({len(rows)}, top-3 entities)")
        if note:
            section.notes.append(note)
        for k, row in enumerate(rows):
            top = ", ".join(f"{self.entities.get(e, f'#{e}')} {p:.2f}"
                            for e, p in zip(row["entity_ids"][:3], row["probs"][:3],
                                            strict=False))
            flag = " LOW CONFIDENCE" if row["low_confidence"] else ""
            section.legend.append((_css(drawing.colour(k)), f"crop {row['crop']}: {top}{flag}"))
        if sampled is None:
            return section
        boxes = np.array([[r["left"], r["top"], r["left"] + r["width"], r["top"] + r["height"]]
                          for r in rows], np.float32).reshape(-1, 4)
        labels = [f"crop {r['crop']}" for r in rows]
        for f, frame in enumerate(sampled.frames):
            image, drawn = drawing.draw_boxes(frame, boxes, labels)
            rel = self.assets.save_image(image, "prompter")
            section.pictures.append(Picture(rel, f"#{int(sampled.indices[f])} "
                                            f"{float(sampled.times[f]):.2f}s",
                                            {"frame-index": str(int(sampled.indices[f])),
                                             "crops": str(drawn)}))
        return section

    def s3d_section(self, row: dict) -> Section:
        features = np.asarray(row["features"], np.float32)
        section = Section("s3d", f"S3D per-second similarity ({row['num_windows']} seconds)")
        if features.size:
            rel = drawing.similarity_strip(self.assets, f"s3d-{row['video_id']}", features)
            section.pictures.append(Picture(rel, "cosine: to the previous second, to the mean; "
                                            "between all seconds"))
        return section


def _css(rgb: tuple[int, int, int]) -> str:
    r, g, b = rgb
    return f"#{r:02x}{g:02x}{b:02x}"


def make_cards(src: ReportSource, assets: Assets, failed: dict[str, list[str]], n: int,
               seed: int, progress=None) -> list[Card]:
    picked = pick_videos(src, failed, n, seed)
    maker = CardMaker(src, assets)
    by_partition: dict[int, set[str]] = {}
    for vid, _, pid in picked:
        by_partition.setdefault(pid, set()).add(vid)
    rows = {pid: maker.rows(pid, ids) for pid, ids in by_partition.items()}
    cards = []
    for vid, path, pid in picked:
        cards.append(maker.card(vid, path, rows[pid]))
        if progress is not None:
            progress(1)
    return cards
