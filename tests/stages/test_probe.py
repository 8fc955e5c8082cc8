from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from media import pattern_frames, sample_videos, write_video

from vlprep.schemas import VIDEOS
from vlprep.stages.base import OUTPUTS, Resources, VideoError
from vlprep.stages.probe import ProbeOptions, ProbeStage, probe_video


def run_probe(path: Path, **options) -> dict:
    stage = ProbeStage(ProbeOptions(**options), Resources())
    record = {"video_id": path.stem, "path": str(path), "partition": 0}
    stage([record])
    return record


def test_bigbuckbunny_facts_match_pyav_and_are_sane():
    path = sample_videos()["bigbuckbunny"]
    info = probe_video(str(path))
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert info["duration"] == pytest.approx(float(stream.duration * stream.time_base))
        assert info["fps"] == pytest.approx(float(stream.average_rate))
        assert info["frame_count"] == stream.frames
        assert (info["width"], info["height"]) == (stream.width, stream.height)
        assert info["codec"] == stream.codec_context.name
    assert info == {"duration": pytest.approx(5.28), "fps": 25.0, "real_fps": 25.0,
                    "frame_count": 132, "frame_count_source": "container",
                    "width": 1280, "height": 720, "codec": "h264", "pix_fmt": "yuv420p",
                    "bit_rate": 1205959, "start_time": 0.0, "rotation": 0,
                    "streams": ["video:h264", "audio:aac"], "file_size": os.path.getsize(path)}


def test_every_sample_clip_gives_one_videos_row_in_schema():
    for name, path in sample_videos().items():
        record = run_probe(path)
        table = record[OUTPUTS]["videos"]
        assert table.schema.equals(VIDEOS, check_metadata=True)
        row = table.to_pylist()
        assert len(row) == 1 and row[0]["video_id"] == name and row[0]["path"] == str(path)
        assert row[0]["streams"][0] == "video:h264" and row[0]["rotation"] == 0
        info = record["probe"]
        assert info["frame_count"] > 0 and info["fps"] > 0 and info["width"] > 0
        # frame count and duration agree for these constant-rate clips
        assert abs(info["duration"] * info["fps"] - info["frame_count"]) <= 1


def test_rotation_comes_from_the_display_matrix(tmp_path):
    frames = np.zeros((3, 32, 64, 3), np.uint8)
    for angle in (90, 180, 270):
        rotated = write_video(tmp_path / f"rotated{angle}.mp4", frames, rotation=angle)
        info = probe_video(str(rotated))
        assert info["rotation"] == angle
        assert info["width"] == 64  # stored size, not the displayed one
    assert probe_video(str(write_video(tmp_path / "plain.mp4", frames)))["rotation"] == 0


def test_frame_count_is_counted_when_the_container_has_none(tmp_path):
    """Matroska stores no frame count; VFR makes duration x fps a poor estimate."""
    pts = np.cumsum(np.r_[0, np.random.default_rng(0).integers(20, 120, size=29)])
    path = write_video(tmp_path / "vfr.mkv", pattern_frames(30, 64, 48), pts=pts,
                       time_base=Fraction(1, 1000))
    info = probe_video(str(path))
    assert info["frame_count"] == 30 and info["frame_count_source"] == "demux"
    never = probe_video(str(path), count_frames="never")
    assert never["frame_count_source"] == "estimate"
    assert never["frame_count"] == round(info["duration"] * info["fps"]) != 30
    clip = sample_videos()["bikes"]
    always = probe_video(str(clip), count_frames="always")
    assert always["frame_count"] == 250 and always["frame_count_source"] == "demux"


def test_isolated_and_in_process_probes_agree():
    path = sample_videos()["bikes"]
    assert run_probe(path)["probe"] == run_probe(path, isolate=False)["probe"]


def test_zero_byte_file_is_a_readable_error(zero_byte_file):
    with pytest.raises(VideoError, match=r"^empty file \(0 bytes\)$"):
        run_probe(zero_byte_file)


def test_text_file_is_not_a_readable_video(text_file_named_mp4):
    with pytest.raises(VideoError, match="^not a readable video: Invalid data"):
        run_probe(text_file_named_mp4)


def test_missing_file(tmp_path):
    with pytest.raises(VideoError, match="^cannot read file: No such file"):
        run_probe(tmp_path / "absent.mp4")


def test_max_file_bytes():
    path = sample_videos()["carphone_distorted"]
    with pytest.raises(VideoError, match="file too large"):
        run_probe(path, max_file_bytes=1000)
    assert run_probe(path, max_file_bytes=10**9)["probe"]["file_size"] == os.path.getsize(path)


def test_options_reject_unknown_keys_and_bad_values():
    with pytest.raises(ValueError, match="extra"):
        ProbeOptions.model_validate({"max_file_byte": 1})
    with pytest.raises(ValueError):
        ProbeOptions(count_frames="sometimes")
    with pytest.raises(ValueError):
        ProbeOptions(timeout=0)
