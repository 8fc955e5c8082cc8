"""Stages by the name job files use for them (an explicit table, no registry magic)."""

from __future__ import annotations

from vlprep.stages.base import Resources, Stage, StageOptions, VideoError, emit


def stage_classes() -> dict[str, type[Stage]]:
    """Kind -> stage class; imported lazily so that `vlprep inspect` stays light."""
    from vlprep.stages.clip import ClipStage
    from vlprep.stages.probe import ProbeStage
    from vlprep.stages.sample import SampleStage
    from vlprep.stages.texts import TextsStage

    return {cls.kind: cls for cls in (ProbeStage, SampleStage, ClipStage, TextsStage)}


__all__ = ["Resources", "Stage", "StageOptions", "VideoError", "emit", "stage_classes"]
