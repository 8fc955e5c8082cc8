"""The sample stage: options, what it leaves in the record, resize/crop, determinism."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from media import pattern_frames, sample_videos, write_video
from PIL import Image

from vlprep.stages.base import Resources, VideoError
from vlprep.stages.decode import decode_frames
from vlprep.stages.decoders.geometry import FrameWriter, Geometry
from vlprep.stages.frames import SampledFrames
from vlprep.stages.probe import ProbeOptions, ProbeStage
from vlprep.stages.sample import SampleOptions, SampleStage
from vlprep.stages.samplers import uniform_indices


def run_sample(path: Path, video_id: str | None = None, **options) -> dict:
    record = {"video_id": video_id or path.stem, "path": str(path), "partition": 0}
    SampleStage(SampleOptions(**options), Resources())([record])
    return record


def test_stage_output_on_bigbuckbunny():
    s = run_sample(sample_videos()["bigbuckbunny"])["frames"]
    assert isinstance(s, SampledFrames) and s.sampler == "uniform"
    assert s.frames.shape == (8, 224, 224, 3) and s.frames.dtype == np.uint8
    assert s.indices.dtype == np.int64 and s.indices.tolist() == uniform_indices(132, 8).tolist()
    assert s.times.dtype == np.float32
    np.testing.assert_allclose(s.times, s.indices / 25.0, rtol=1e-6)  # constant 25 fps
    assert s.valid.all() and not s.snapped.any() and s.window_starts is None
    assert s.fps == 25.0 and s.frame_count == 132
    assert s.frames.std() > 10  # real picture content, not a blank buffer


@pytest.mark.parametrize("sampler,count", [("uniform", 8), ("middle", 8), ("rand", 8),
                                           ("headtail", 4), ("stoa", 12)])
def test_default_frame_counts_per_method(sampler, count):
    s = run_sample(sample_videos()["bikes"], sampler=sampler, size=32)["frames"]
    assert s.frames.shape == (count, 32, 32, 3) and len(s.indices) == count
    assert (np.diff(s.indices) >= 0).all()


def test_random_samplers_are_reproducible_and_differ_per_video_and_seed():
    path = sample_videos()["bikes"]
    a = run_sample(path, "v1", sampler="headtail", size=32)["frames"]
    b = run_sample(path, "v1", sampler="headtail", size=32, isolate=False)["frames"]
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.frames, b.frames)  # isolation changes nothing
    other_id = run_sample(path, "v2", sampler="headtail", size=32)["frames"]
    other_seed = run_sample(path, "v1", sampler="headtail", seed=1, size=32)["frames"]
    assert a.indices.tolist() != other_id.indices.tolist()
    assert a.indices.tolist() != other_seed.indices.tolist()


def test_videoclip_frames_are_whole_windows():
    s = run_sample(sample_videos()["bigbuckbunny"], sampler="videoclip", size=32)["frames"]
    # 5.28 s at 30 fps: 158 frames (as ffmpeg -vf fps=30), 6 windows of 30, 22 zero-padded
    assert s.frames.shape == (180, 32, 32, 3) and s.window == 30
    assert s.valid.sum() == 158 and not s.valid[158:].any()
    assert (s.frames[158:] == 0).all() and (s.indices[158:] == -1).all()
    np.testing.assert_allclose(s.window_starts, np.arange(6, dtype=np.float32))
    assert s.indices[:12].tolist() == [0, 1, 2, 2, 3, 4, 5, 6, 7, 7, 8, 9]  # 25 -> 30 fps


def test_keyframe_snap_stays_inside_segments():
    s = run_sample(sample_videos()["bikes"], sampler="middle", snap="keyframe",
                   size=32)["frames"]
    keyframes = {0, 30, 76, 137, 187, 242}  # bikes.mp4
    exact = run_sample(sample_videos()["bikes"], sampler="middle", size=32)["frames"]
    for i, (index, moved) in enumerate(zip(s.indices, s.snapped, strict=True)):
        lo, hi = i * 250 // 8, (i + 1) * 250 // 8
        assert lo <= index < hi
        assert (index in keyframes) if moved else (index == exact.indices[i])
    assert s.snapped.sum() == 5  # segments 1, 3 and 5 hold no keyframe


def test_frames_are_the_centre_crop_of_the_resized_frame():
    """Check against PyAV decoding + PIL bilinear resize + crop, computed independently."""
    path = sample_videos()["bikes"]  # 640 x 272: landscape, so the crop cuts the sides
    record = run_sample(path, num_frames=4)
    target = int(record["frames"].indices[1])
    with av.open(str(path)) as container:
        for n, frame in enumerate(container.decode(video=0)):
            if n == target:
                image = frame.to_image()
                break
    w = 640 * 224 // 272
    resized = np.asarray(image.resize((w, 224), Image.Resampling.BILINEAR))
    left = (w - 224) // 2
    expected = resized[:, left:left + 224]
    diff = np.abs(record["frames"].frames[1].astype(int) - expected.astype(int))
    assert diff.mean() < 1.0
    shifted = np.abs(record["frames"].frames[1].astype(int) - resized[:, :224].astype(int))
    assert shifted.mean() > 5  # a left-aligned crop would not match


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


@pytest.mark.parametrize("decoder", ["pyav", "decord"])
def test_squash_frames_are_a_squash_resize_of_the_source(decoder):
    """resize: squash (ALPRO's decord reads at a fixed width and height): the whole 640 x 272
    frame resized to size x size, against PIL on the full decoded frame; with crop, its
    centre (ALPRO pre-training: 256, then a 224 crop, random in ALPRO, centre here)."""
    path = sample_videos()["bikes"]
    squashed = run_sample(path, num_frames=3, resize="squash", size=224, decoder=decoder)
    cropped = run_sample(path, num_frames=3, resize="squash", size=256, crop=224,
                         decoder=decoder)
    frames = decode_frames(str(path), squashed["frames"].indices)
    assert squashed["frames"].decoder == cropped["frames"].decoder == decoder  # no fallback
    assert squashed["frames"].frames.shape == cropped["frames"].frames.shape == (3, 224, 224, 3)
    assert (cropped["frames"].indices == squashed["frames"].indices).all()
    for got, full, centre in zip(squashed["frames"].frames, frames, cropped["frames"].frames,
                                 strict=True):
        assert psnr(got, np.asarray(Image.fromarray(full).resize((224, 224)))) >= 35
        big = np.asarray(Image.fromarray(full).resize((256, 256)))
        assert psnr(centre, big[16:240, 16:240]) >= 35
        short_side = np.asarray(Image.fromarray(full).resize((640 * 224 // 272, 224)))
        left = (short_side.shape[1] - 224) // 2
        assert psnr(got, short_side[:, left:left + 224]) < 25  # not the short-side crop


def test_geometry_portrait_keeps_the_middle_and_rotates():
    image = np.zeros((200, 100, 3), np.uint8)
    image[:50] = (255, 0, 0)      # top quarter red
    image[50:150] = (0, 255, 0)   # middle half green
    image[150:] = (0, 0, 255)     # bottom quarter blue
    out = np.zeros((1, 20, 20, 3), np.uint8)
    FrameWriter(Geometry(20, 20), out).put([0], image)
    # the 40 x 20 resize keeps rows 10..30, i.e. the green half only
    assert (out[0, 1:-1, :, 1] > 200).all() and (out[0, 1:-1, :, [0, 2]] < 50).all()
    # displayed turned 90 degrees counter-clockwise: the left half ends up at the bottom
    image[:, :50], image[:, 50:] = (255, 0, 0), (0, 0, 255)
    FrameWriter(Geometry(20, 20, rotation=90), out).put([0], image)
    assert (out[0, :8, :, 2] > 200).all() and (out[0, -8:, :, 0] > 200).all()
    assert Geometry(40, 30).display_dims(100, 200) == (40, 80)
    assert Geometry(40, 30, rotation=270).stored_dims(100, 200) == (40, 80)
    assert Geometry(40, 30, squash=True).display_dims(100, 200) == (40, 40)
    assert Geometry(40, 30, rotation=90, squash=True).stored_dims(100, 200) == (40, 40)


def test_rotated_video_is_sampled_as_displayed(tmp_path):
    frames = pattern_frames(4, 192, 96)
    path = write_video(tmp_path / "portrait.mp4", frames, rotation=90)
    record = {"video_id": "p", "path": str(path), "partition": 0}
    ProbeStage(ProbeOptions(), Resources())([record])
    SampleStage(SampleOptions(num_frames=2, size=48, crop=48), Resources())([record])
    sampled = record["frames"]
    expected = np.rot90(decode_frames(str(path), sampled.indices), 1, axes=(1, 2))
    small = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(e)).resize((48, 96)))
                      for e in expected])[:, 24:72]
    assert np.abs(sampled.frames.astype(int) - small).mean() < 3


def test_short_video_repeats_frames(tmp_path):
    # 64 wide: decord 0.6 fails to copy frames narrower than that (48 px gives a size error)
    frames = np.stack([np.full((32, 64, 3), 40 * i, np.uint8) for i in range(3)])
    path = write_video(tmp_path / "short.mp4", frames)
    for decoder in ("pyav", "decord", "ffmpeg"):
        record = run_sample(path, num_frames=8, size=32, decoder=decoder)
        assert record["frames"].decoder == decoder
        assert record["frames"].indices.tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
        assert record["frames"].frames.shape == (8, 32, 32, 3)
        means = record["frames"].frames.reshape(8, -1).mean(axis=1)
        np.testing.assert_allclose(means, [0, 0, 0, 40, 40, 40, 80, 80], atol=3)


def test_crop_and_option_validation():
    record = run_sample(sample_videos()["carphone_distorted"], num_frames=2, size=256, crop=224)
    assert record["frames"].frames.shape == (2, 224, 224, 3)
    with pytest.raises(ValueError, match="cannot exceed"):
        SampleOptions(size=224, crop=256)
    with pytest.raises(ValueError):
        SampleOptions(num_frames=0)
    with pytest.raises(ValueError, match="snap: keyframe applies to sparse samplers"):
        SampleOptions(sampler="videoclip", snap="keyframe")
    with pytest.raises(ValueError, match="num_frames does not apply"):
        SampleOptions(sampler="videoclip", num_frames=8)
    with pytest.raises(ValueError, match="extra"):
        SampleOptions.model_validate({"sampler": "uniform", "num_frame": 8})
    with pytest.raises(ValueError):
        SampleOptions(decoder="opencv")
    with pytest.raises(ValueError):
        SampleOptions(resize="stretch")
    assert SampleOptions().resize == "short_side"


@pytest.mark.parametrize("decoder", ["pyav", "decord", "ffmpeg"])
def test_bad_files_raise_video_error(decoder, zero_byte_file, text_file_named_mp4):
    with pytest.raises(VideoError, match=r"^empty file \(0 bytes\)$"):
        run_sample(zero_byte_file, decoder=decoder)
    with pytest.raises(VideoError, match="not a readable video"):
        run_sample(text_file_named_mp4, decoder=decoder)
