"""What a run did, counted by the driver from the workers' batch reports (metadata only)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

MAX_NOTES = 1000  # per stage, listed by video in the run summary (all are counted)


@dataclass
class StageCounts:
    videos: int = 0  # videos that reached the stage
    errors: Counter = field(default_factory=Counter)  # reason -> videos
    seconds: float = 0.0  # summed per-video shares of batch wall time (worker time)
    notes: dict[str, str] = field(default_factory=dict)  # video_id -> note, MAX_NOTES of them
    noted: int = 0  # videos with a note


@dataclass
class RunCounts:
    videos: int = 0
    failed: int = 0
    partitions: int = 0
    rows: Counter = field(default_factory=Counter)
    errors_by_stage: Counter = field(default_factory=Counter)
    stages: dict[str, StageCounts] = field(default_factory=dict)
    bytes_written: int = 0  # data files committed by this run, as stored
    driver_bytes_received: int = 0  # what the pass plans handed the driver (reports)
    writers: Counter = field(default_factory=Counter)  # "node pid" -> files written

    def note_video(self, video: dict, count_video: bool = True) -> None:
        """Per-stage accounting of one finished video (a batch report's entry for it)."""
        seconds = video.get("seconds") or {}
        for name, share in seconds.items():
            stage = self.stages.setdefault(name, StageCounts())
            stage.videos += 1
            stage.seconds += share
        for name, text in (video.get("notes") or {}).items():
            stage = self.stages.setdefault(name, StageCounts())
            stage.noted += 1
            if len(stage.notes) < MAX_NOTES:
                stage.notes[str(video["video_id"])] = text
        self.videos += count_video
        error = video.get("error")
        if error:
            stage = self.stages.setdefault(error["stage"], StageCounts())
            stage.errors[error["error"]] += 1
            if error["stage"] not in seconds:
                stage.videos += 1  # failed before any timing was taken (crash journal)
            self.failed += count_video
            self.errors_by_stage[error["stage"]] += 1
