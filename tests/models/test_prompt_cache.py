from __future__ import annotations

import numpy as np

from vlprep.models.prompt_cache import cache_key, cached, default_directory


def test_key_depends_on_everything_the_matrix_does():
    base = cache_key("ab" * 32, ["dog", "cat"], ["A {}."], precision="fp32")
    assert base == cache_key("ab" * 32, ["dog", "cat"], ["A {}."], precision="fp32")
    assert len({base,
                cache_key("cd" * 32, ["dog", "cat"], ["A {}."], precision="fp32"),
                cache_key("ab" * 32, ["cat", "dog"], ["A {}."], precision="fp32"),
                cache_key("ab" * 32, ["dog", "cat"], ["The {}."], precision="fp32"),
                cache_key("ab" * 32, ["dog", "cat"], ["A {}."], precision="bf16")}) == 5


def test_written_once_read_after_and_a_damaged_file_recomputed(tmp_path):
    calls = []

    def compute():
        calls.append(1)
        return np.arange(6, dtype=np.float64).reshape(2, 3)

    first = cached(tmp_path, "k", compute)
    assert first.dtype == np.float32 and len(calls) == 1
    assert np.array_equal(cached(tmp_path, "k", compute), first) and len(calls) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["k.npy"]  # no temporaries left
    (tmp_path / "k.npy").write_bytes(b"not an array")
    assert np.array_equal(cached(tmp_path, "k", compute), first) and len(calls) == 2


def test_default_directory(monkeypatch, tmp_path):
    monkeypatch.setenv("VLPREP_CACHE", str(tmp_path))
    assert default_directory() == tmp_path / "prompts"
