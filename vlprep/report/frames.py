"""Re-decode the frames a store's features came from, with the store's own recipe.

The recipe (``_recipe.json``) names each sample stage with its options (sampler, frame count,
size, decoder, seed) and each model stage with the sample key it read (``frames``). Building
the same :class:`~vlprep.stages.sample.SampleStage` from those options and running it on the
video gives the very frames the model stage saw: same indices (checked against the rows' own
``frame_index``), same pixels with the same decoder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vlprep.stages.frames import SampledFrames

# Which model stage kinds read sampled frames, and through which option.
FRAME_READERS = {"clip": "frames", "detect": "frames", "prompter": "frames", "s3d": "frames"}


@dataclass(frozen=True)
class FrameSource:
    """A sample stage of the recipe and the model stage that reads its frames."""

    sample_name: str
    options: dict[str, Any]
    reader: str  # model stage name (clip, detect, prompter, ...)
    reader_kind: str


def frame_sources(recipe: dict[str, Any] | None) -> dict[str, FrameSource]:
    """Model stage kind -> the sample stage whose frames it read: the last one before it
    that wrote the key it reads (two passes may both sample under `frames`)."""
    if not recipe:
        return {}
    latest: dict[str, dict[str, Any]] = {}  # sample key -> the last sample stage so far
    out: dict[str, FrameSource] = {}
    for stage in recipe.get("stages", []):
        if stage["kind"] == "sample":
            latest[stage["options"].get("key", "frames")] = stage
            continue
        option = FRAME_READERS.get(stage["kind"])
        if option is None or stage["kind"] in out:
            continue
        sample = latest.get(stage["options"].get(option, "frames"))
        if sample is not None:
            out[stage["kind"]] = FrameSource(sample["name"], sample["options"], stage["name"],
                                             stage["kind"])
    return out


class FrameDecoder:
    """Sample stages rebuilt from the recipe, one per sample key, run in this process."""

    def __init__(self) -> None:
        self._stages: dict[str, Any] = {}

    def stage(self, source: FrameSource):
        if source.sample_name not in self._stages:
            from vlprep.stages.base import Resources
            from vlprep.stages.sample import SampleStage

            options = SampleStage.Options.model_validate(source.options)
            self._stages[source.sample_name] = SampleStage(
                options, Resources(num_cpus=1.0), source.sample_name, None)
        return self._stages[source.sample_name]

    def decode(self, source: FrameSource, video_id: str, path: str,
               rotation: int | None) -> SampledFrames:
        """The frames of one video as the sample stage made them (raises on a bad video)."""
        record = {"video_id": video_id, "path": path, "probe": {"rotation": rotation}}
        return self.stage(source).compute(record)
