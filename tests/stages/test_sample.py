from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pytest
from media import sample_videos, write_video
from PIL import Image

from vlprep.stages.base import Resources, VideoError
from vlprep.stages.decode import decode_frames, open_video
from vlprep.stages.sample import SampleOptions, SampleStage, resize_center_crop
from vlprep.stages.samplers import sample_indices, uniform_indices


def run_sample(path: Path, **options) -> dict:
    record = {"video_id": path.stem, "path": str(path), "partition": 0}
    SampleStage(SampleOptions(**options), Resources())([record])
    return record


@pytest.mark.parametrize("frame_count", [1, 7, 8, 9, 120, 132, 250, 10_001])
@pytest.mark.parametrize("num_frames", [1, 4, 8, 12])
def test_uniform_indices_are_segment_midpoints(frame_count, num_frames):
    got = uniform_indices(frame_count, num_frames)
    seg = frame_count / num_frames
    expected = [int(np.floor((i + 0.5) * seg + 1e-9)) for i in range(num_frames)]
    assert got.dtype == np.int64 and got.tolist() == expected
    assert np.all(np.diff(got) >= 0) and got.min() >= 0 and got.max() < frame_count
    if frame_count >= num_frames:  # segments at least a frame long: no frame taken twice
        assert len(set(got.tolist())) == num_frames


def test_uniform_known_values_and_short_videos_repeat_sorted():
    assert uniform_indices(132, 8).tolist() == [8, 24, 41, 57, 74, 90, 107, 123]
    assert uniform_indices(8, 8).tolist() == list(range(8))
    assert uniform_indices(3, 8).tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
    assert sample_indices("uniform", 132, 8).tolist() == uniform_indices(132, 8).tolist()
    with pytest.raises(ValueError):
        uniform_indices(0, 8)
    with pytest.raises(ValueError, match="unknown sampler"):
        sample_indices("headtail", 10, 4)


@pytest.mark.parametrize("name", ["bikes", "carphone_pristine", "carphone_distorted"])
def test_decord_and_pyav_decode_identical_frames(name):
    path = str(sample_videos()[name])
    dec, pav = open_video(path, "decord"), open_video(path, "pyav")
    assert dec.frame_count == pav.frame_count and dec.fps == pytest.approx(pav.fps)
    indices = uniform_indices(dec.frame_count, 8)
    a, b = decode_frames(path, indices, "decord"), decode_frames(path, indices, "pyav")
    assert a.dtype == np.uint8 and a.shape[0] == 8 and a.shape[3] == 3
    np.testing.assert_array_equal(a, b)


def test_stage_output_on_bigbuckbunny():
    record = run_sample(sample_videos()["bigbuckbunny"])
    s = record["frames"]
    frames, indices, times = s.frames, s.indices, s.times
    assert frames.shape == (8, 224, 224, 3) and frames.dtype == np.uint8
    assert indices.dtype == np.int64 and indices.tolist() == uniform_indices(132, 8).tolist()
    assert times.dtype == np.float32
    np.testing.assert_allclose(times, indices / 25.0, rtol=1e-6)
    assert frames.std() > 10  # real picture content, not a blank buffer


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
    assert diff.max() <= 2 and diff.mean() < 0.5
    shifted = np.abs(record["frames"].frames[1].astype(int) - resized[:, :224].astype(int))
    assert shifted.mean() > 5  # a left-aligned crop would not match


def test_resize_center_crop_portrait_keeps_the_middle():
    image = np.zeros((1, 200, 100, 3), np.uint8)
    image[0, :50] = (255, 0, 0)      # top quarter red
    image[0, 50:150] = (0, 255, 0)   # middle half green
    image[0, 150:] = (0, 0, 255)     # bottom quarter blue
    out = resize_center_crop(image, size=20)
    assert out.shape == (1, 20, 20, 3) and out.dtype == np.uint8
    # the 40 x 20 resize keeps rows 10..30, i.e. the green half only
    assert (out[0, 1:-1, :, 1] > 200).all() and (out[0, 1:-1, :, [0, 2]] < 50).all()
    assert resize_center_crop(image, size=40, crop=30).shape == (1, 30, 30, 3)


def test_short_video_repeats_frames(tmp_path):
    # 64 wide: decord 0.6 fails to copy frames narrower than that (48 px gives a size error)
    frames = np.stack([np.full((32, 64, 3), 40 * i, np.uint8) for i in range(3)])
    path = write_video(tmp_path / "short.mp4", frames)
    for decoder in ("decord", "pyav"):
        record = run_sample(path, num_frames=8, size=32, decoder=decoder)
        assert record["frames"].indices.tolist() == [0, 0, 0, 1, 1, 2, 2, 2]
        assert record["frames"].frames.shape == (8, 32, 32, 3)
        means = record["frames"].frames.reshape(8, -1).mean(axis=1)
        np.testing.assert_allclose(means, [0, 0, 0, 40, 40, 80, 80, 80], atol=3)


def test_pyav_stage_equals_decord_stage():
    path = sample_videos()["carphone_pristine"]
    a = run_sample(path, decoder="decord")
    b = run_sample(path, decoder="pyav")
    np.testing.assert_array_equal(a["frames"].frames, b["frames"].frames)
    np.testing.assert_array_equal(a["frames"].times, b["frames"].times)


def test_crop_option():
    record = run_sample(sample_videos()["carphone_distorted"], num_frames=2, size=256, crop=224)
    assert record["frames"].frames.shape == (2, 224, 224, 3)
    with pytest.raises(ValueError, match="cannot exceed"):
        SampleOptions(size=224, crop=256)
    with pytest.raises(ValueError):
        SampleOptions(num_frames=0)


@pytest.mark.parametrize("decoder", ["decord", "pyav"])
def test_bad_files_raise_video_error(decoder, zero_byte_file, text_file_named_mp4):
    with pytest.raises(VideoError, match=r"^empty file \(0 bytes\)$"):
        run_sample(zero_byte_file, decoder=decoder)
    with pytest.raises(VideoError, match="cannot open|not a readable video"):
        run_sample(text_file_named_mp4, decoder=decoder)
