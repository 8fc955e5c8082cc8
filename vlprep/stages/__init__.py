"""Stages by the name job files use for them (an explicit table, no registry magic)."""

from __future__ import annotations

from vlprep.stages.base import AggregateStage, Resources, Stage, StageOptions, VideoError, emit


def stage_classes() -> dict[str, type[Stage] | type[AggregateStage]]:
    """Kind -> stage class; imported lazily so that `vlprep inspect` stays light."""
    from vlprep.stages.clip import ClipStage
    from vlprep.stages.detect import DetectStage
    from vlprep.stages.entities import EntitiesStage
    from vlprep.stages.probe import ProbeStage
    from vlprep.stages.prompter import PrompterStage
    from vlprep.stages.s3d import S3dStage
    from vlprep.stages.sample import SampleStage
    from vlprep.stages.texts import TextsStage
    from vlprep.stages.trajectories import TrajectoriesStage

    return {cls.kind: cls for cls in (ProbeStage, SampleStage, ClipStage, TextsStage,
                                      EntitiesStage, PrompterStage, S3dStage, DetectStage,
                                      TrajectoriesStage)}


__all__ = ["Resources", "Stage", "StageOptions", "VideoError", "emit", "stage_classes"]
