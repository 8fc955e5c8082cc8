"""VinVL's label map, ``VG-SGG-dicts-vgoi6-clipped.json``: class and attribute names by id.

scene_graph_benchmark reads it in ``convert_predictions_to_tsv``: class id = ``label_to_idx``
value (1-based; 0 is the background), attribute id = ``attribute_to_idx`` value with
``__no_attribute__`` as 0. ``idx_to_label`` / ``idx_to_attribute`` (string keys) are used
where the ``*_to_idx`` maps are absent.
"""

from __future__ import annotations

import json
from pathlib import Path

from vlprep.errors import CheckpointError

BACKGROUND = "__background__"
NO_ATTRIBUTE = "__no_attribute__"


def _by_id(data: dict, to_idx: str, from_idx: str, zero: str, path: Path) -> list[str] | None:
    if isinstance(data.get(to_idx), dict):
        by_id = {int(v): str(k) for k, v in data[to_idx].items()}
    elif isinstance(data.get(from_idx), dict):
        by_id = {int(k): str(v) for k, v in data[from_idx].items()}
    else:
        return None
    by_id.pop(0, None)
    if not by_id or sorted(by_id) != list(range(1, len(by_id) + 1)):
        raise CheckpointError(f"label map {path}: {to_idx} ids are not 1..N")
    return [zero, *(by_id[i] for i in range(1, len(by_id) + 1))]


def read_vinvl_label_map(path: str | Path) -> tuple[list[str], list[str] | None]:
    """(class names by id with background at 0, attribute names by id with
    ``__no_attribute__`` at 0, or None when the file has no attributes)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"label map {path}: not readable JSON ({e})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"label map {path}: expected VG-SGG-dicts (label_to_idx, ...)")
    classes = _by_id(data, "label_to_idx", "idx_to_label", BACKGROUND, path)
    if classes is None:
        raise CheckpointError(f"label map {path}: no label_to_idx or idx_to_label")
    return classes, _by_id(data, "attribute_to_idx", "idx_to_attribute", NO_ATTRIBUTE, path)


def vinvl_names(path: str | Path | None, num_classes: int,
                num_attributes: int) -> tuple[list[str], list[str]]:
    """The label map for a model of this size (``class_<id>`` / ``attr_<id>`` without one)."""
    if path is None:
        return ([BACKGROUND, *(f"class_{i}" for i in range(1, num_classes))],
                [NO_ATTRIBUTE, *(f"attr_{i}" for i in range(1, num_attributes))])
    classes, attributes = read_vinvl_label_map(path)
    if len(classes) != num_classes:
        raise CheckpointError(f"label map {path} has {len(classes)} classes (background "
                              f"included) but the detector has {num_classes}")
    if attributes is None:
        attributes = [NO_ATTRIBUTE, *(f"attr_{i}" for i in range(1, num_attributes))]
    elif len(attributes) != num_attributes:
        raise CheckpointError(f"label map {path} has {len(attributes)} attributes (none "
                              f"included) but the detector has {num_attributes}")
    return classes, attributes
