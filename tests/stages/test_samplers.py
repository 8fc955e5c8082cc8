"""Sampler index math against the methods' public code, and ffmpeg's fps filter rules."""

from __future__ import annotations

import random
from fractions import Fraction

import numpy as np
import pytest

from vlprep.stages.resample import fps_slots, last_frame_duration, round_near_inf, windows
from vlprep.stages.samplers import (
    Pick,
    headtail_pick,
    middle_indices,
    pick_frames,
    rand_pick,
    snap_to_keyframes,
    stoa_indices,
    uniform_indices,
    video_rng,
)

FRAME_COUNTS = [8, 9, 17, 120, 131, 132, 250, 3600, 10_001]


@pytest.mark.parametrize("frame_count", FRAME_COUNTS)
@pytest.mark.parametrize("num_frames", [4, 7, 8, 12, 16])
def test_uniform_is_alpros_arange(frame_count, num_frames):
    """ALPRO: np.arange(0, F, F / N, dtype=int) (its first N values: for N like 7 NumPy can
    return N + 1). Shorter videos are the documented exception, tested below."""
    if frame_count < num_frames:
        return
    alpro = np.arange(0, frame_count, frame_count / num_frames, dtype=int)[:num_frames]
    assert uniform_indices(frame_count, num_frames).tolist() == alpro.tolist()


def test_uniform_known_values_and_short_videos():
    # the NumPy quirk: steps of int(F / N) = 16, not round(i * 16.5)
    assert uniform_indices(132, 8).tolist() == [0, 16, 32, 48, 64, 80, 96, 112]
    assert uniform_indices(10, 4).tolist() == [0, 2, 4, 6]
    # fewer frames than N: ALPRO would return frame 0 N times; we spread the picks
    assert uniform_indices(3, 8).tolist() == [0, 0, 0, 1, 1, 1, 2, 2]
    assert uniform_indices(1, 4).tolist() == [0, 0, 0, 0]
    with pytest.raises(ValueError):
        uniform_indices(0, 8)
    with pytest.raises(ValueError):
        uniform_indices(10, 0)


@pytest.mark.parametrize("frame_count", [1, 7, 8, 9, 132, 250, 10_001])
def test_middle_is_segment_midpoints(frame_count):
    got = middle_indices(frame_count, 8)
    seg = frame_count / 8
    assert got.tolist() == [int(np.floor((i + 0.5) * seg + 1e-9)) for i in range(8)]
    assert middle_indices(132, 8).tolist() == [8, 24, 41, 57, 74, 90, 107, 123]


def alpro_headtail(frame_count: int, num_frames: int, rng: random.Random) -> list[int]:
    """ALPRO's own headtail (src/datasets/dataset_base.py), for the distribution check."""
    head = sorted(rng.sample(range(frame_count // 2), num_frames // 2))
    tail = sorted(rng.sample(range(frame_count // 2, frame_count), num_frames // 2))
    return head + tail


@pytest.mark.parametrize("frame_count", [8, 9, 50, 132, 3600])
def test_headtail_halves_distinct_sorted_and_deterministic(frame_count):
    for seed in range(20):
        pick = headtail_pick(frame_count, 4, video_rng(f"v{seed}", 0))
        head, tail = pick.indices[:2], pick.indices[2:]
        assert (head < frame_count // 2).all() and (tail >= frame_count // 2).all()
        assert len(set(head.tolist())) == 2 and len(set(tail.tolist())) == 2
        assert (np.diff(head) > 0).all() and (np.diff(tail) > 0).all()
        again = headtail_pick(frame_count, 4, video_rng(f"v{seed}", 0))
        assert again.indices.tolist() == pick.indices.tolist()


def test_headtail_matches_alpros_distribution():
    """Every frame of a half is equally likely, as with ALPRO's random.sample."""
    counts = np.zeros(40)
    ref = np.zeros(40)
    rng = random.Random(0)
    for i in range(3000):
        counts[headtail_pick(40, 4, video_rng(str(i), 1)).indices] += 1
        ref[alpro_headtail(40, 4, rng)] += 1
    assert counts[:20].sum() == counts[20:].sum() == 6000
    assert np.abs(counts - 300).max() < 75 and np.abs(ref - 300).max() < 75


def test_headtail_short_videos_and_odd_n():
    pick = headtail_pick(3, 4, video_rng("a", 0))  # halves of 1 and 2 frames: repeats
    assert len(pick.indices) == 4 and pick.indices.max() <= 2
    assert (pick.indices[:2] == 0).all() and (pick.indices[2:] >= 1).all()
    assert len(headtail_pick(1, 4, video_rng("a", 0)).indices) == 4
    assert len(headtail_pick(100, 5, video_rng("a", 0)).indices) == 5  # 2 head + 3 tail


def test_rand_one_frame_per_segment():
    for seed in range(30):
        pick = rand_pick(250, 8, video_rng("clip", seed))
        assert ((pick.indices >= pick.lo) & (pick.indices < pick.hi)).all()
        assert pick.lo.tolist() == [i * 250 // 8 for i in range(8)]
    assert rand_pick(3, 8, video_rng("c", 0)).indices.max() <= 2


def test_random_samplers_depend_only_on_video_and_seed():
    a = pick_frames("rand", 1000, 8, video_id="video-1", seed=7).indices
    assert a.tolist() == pick_frames("rand", 1000, 8, video_id="video-1", seed=7).indices.tolist()
    assert a.tolist() != pick_frames("rand", 1000, 8, video_id="video-1", seed=8).indices.tolist()
    assert a.tolist() != pick_frames("rand", 1000, 8, video_id="video-2", seed=7).indices.tolist()
    # fixed values: a change of generator would silently change every store's frames
    assert pick_frames("headtail", 100, 4, video_id="x").indices.tolist() == [3, 26, 76, 78]
    assert pick_frames("rand", 100, 8, video_id="x").indices.tolist() == \
        [0, 18, 31, 49, 52, 65, 79, 92]


def stoa_reference(frame_count: int, fps: float, max_frames: int) -> list[int]:
    """STOA-VLP / CLIP4Clip: cv2 reads frame sec * int(fps) for each second until it fails,
    then np.linspace(0, L - 1, max_frames, dtype=int) (slice_framepos 2)."""
    fps_int = int(fps)
    total_duration = (frame_count + fps_int - 1) // fps_int
    frames = [sec * fps_int for sec in range(total_duration + 1) if sec * fps_int < frame_count]
    picks = np.linspace(0, len(frames) - 1, num=max_frames, dtype=int)
    return [frames[i] for i in picks]


@pytest.mark.parametrize("frame_count,fps", [(132, 25.0), (250, 25.0), (120, 29.97),
                                             (3600, 30.0), (1000, 59.94), (20, 10.0)])
def test_stoa_matches_clip4clip_extraction(frame_count, fps):
    assert stoa_indices(frame_count, 12, fps).tolist() == stoa_reference(frame_count, fps, 12)


def test_snap_moves_targets_to_free_keyframes_in_their_segment():
    pick = Pick(np.array([10, 40, 70, 95]), np.array([0, 25, 50, 75]), np.array([25, 50, 75, 100]))
    keyframes = np.array([0, 30, 48, 60, 90])
    indices, snapped = snap_to_keyframes(pick, keyframes)
    assert indices.tolist() == [0, 48, 60, 90] and snapped.all()
    # a segment without a keyframe keeps its exact target; two targets never share one
    pick = Pick(np.array([5, 15, 60]), np.array([0, 0, 50]), np.array([50, 50, 100]))
    indices, snapped = snap_to_keyframes(pick, np.array([12]))
    assert indices.tolist() == [12, 15, 60] and snapped.tolist() == [True, False, False]


def test_round_near_inf_is_halves_away_from_zero():
    assert [round_near_inf(Fraction(n, 2)) for n in (-3, -1, 1, 3, 5)] == [-2, -1, 1, 2, 3]
    assert round_near_inf(Fraction(7, 3)) == 2 and round_near_inf(Fraction(-7, 3)) == -2


def test_fps_filter_duplicates_drops_and_ends_like_ffmpeg():
    tb = Fraction(1, 25)
    # 25 -> 30 fps: every fifth frame is shown twice
    slots = fps_slots(np.arange(10), tb, end_pts=10).source
    assert slots.tolist() == [0, 1, 2, 2, 3, 4, 5, 6, 7, 7, 8, 9]
    # 60 -> 30 fps: every other frame is dropped (odd frames round up to the next slot)
    slots = fps_slots(np.arange(8), Fraction(1, 60), end_pts=8).source
    assert slots.tolist() == [0, 2, 4, 6]
    # a 1-frame video lasting 0.1 s fills three slots
    assert fps_slots(np.array([0]), Fraction(1, 10), end_pts=1).source.tolist() == [0, 0, 0]
    # a video starting at 0.5 s on its container's timeline is padded from 0, as the CLI does
    late = fps_slots(np.array([50, 60]), Fraction(1, 100), end_pts=70)
    assert late.source.tolist() == [0] * 15 + [0, 0, 0, 1, 1, 1]
    assert late.first_slot == 0


def test_last_frame_duration_and_windows():
    pts = np.array([0, 512, 1024])
    assert last_frame_duration(pts, np.array([512, 512, 300]), None, Fraction(1, 12800)) == 300
    assert last_frame_duration(pts, np.zeros(3, int), None, Fraction(1, 12800)) == 512
    assert last_frame_duration(np.array([0]), np.zeros(1, int), Fraction(25),
                               Fraction(1, 12800)) == 512
    assert windows(90, 30) == (3, 0) and windows(91, 30) == (4, 29) and windows(1, 30) == (1, 29)
