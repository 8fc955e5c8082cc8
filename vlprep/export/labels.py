"""The detector's label map, as VinVL's ``VG-SGG-dicts*.json`` (what STOA-VLP indexes).

STOA-VLP looks class names up in ``label_map["label_to_idx"]`` and ids in
``label_map["idx_to_label"]`` (string keys), so an export ships the map the store's class ids
belong to: the detect stage's ``label_map`` from the store's recipe (``coco`` or a file that
is still there), completed with every (id, name) pair the `regions` rows carry.
"""

from __future__ import annotations

import logging

from vlprep.export.source import StoreSource

log = logging.getLogger("vlprep")


class LabelMap:
    """Class id -> name, seeded from the recipe and completed from the rows seen."""

    def __init__(self, source: StoreSource):
        self.names: dict[int, str] = {}
        stage = source.recipe_stage("detect")
        spec = (stage or {}).get("options", {}).get("label_map")
        if spec:
            try:
                from vlprep.models.detector import read_label_map

                self.names = dict(enumerate(read_label_map(spec)))
            except (ValueError, OSError) as e:
                log.warning("label map %s of the store's recipe is not readable (%s); using "
                            "the class names in `regions`", spec, e)

    def see(self, ids: list[int], names: list[str]) -> None:
        for i, name in zip(ids, names, strict=True):
            self.names.setdefault(int(i), str(name))

    def vg_sgg_dicts(self) -> dict[str, dict[str, int] | dict[str, str]]:
        """``{"label_to_idx": {name: id}, "idx_to_label": {"id": name}}`` without background
        (id 0), as VinVL's label map files have them; a repeated name keeps its first id."""
        idx_to_label = {str(i): n for i, n in sorted(self.names.items()) if i > 0}
        label_to_idx: dict[str, int] = {}
        for i, name in sorted(self.names.items()):
            if i > 0:
                label_to_idx.setdefault(name, i)
        return {"label_to_idx": label_to_idx, "idx_to_label": idx_to_label}
