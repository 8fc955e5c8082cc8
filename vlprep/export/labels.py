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
    """Class id -> unique name, seeded from the recipe and completed from the rows seen.

    Names are unique (``N/A``, ``N/A_26``, ...: :func:`unique_name`), since the readers map
    names back to ids; the exports write these names, not a row's own `class_names` entry,
    so a store made with a repeating label map still exports classes that come back apart.
    """

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
        self.taken = set(self.names.values())

    def see(self, ids: list[int], names: list[str]) -> list[str]:
        """The unique names of these class ids (`names`: the rows' own names for them)."""
        from vlprep.models.detector import unique_name

        out = []
        for i, name in zip(ids, names, strict=True):
            i = int(i)
            if i not in self.names:
                self.names[i] = unique_name(str(name), i, self.taken)
                self.taken.add(self.names[i])
            out.append(self.names[i])
        return out

    def vg_sgg_dicts(self) -> dict[str, dict[str, int] | dict[str, str]]:
        """``{"label_to_idx": {name: id}, "idx_to_label": {"id": name}}`` without background
        (id 0), as VinVL's label map files have them; every name names one id."""
        ids = [i for i in sorted(self.names) if i > 0]
        return {"label_to_idx": {self.names[i]: i for i in ids},
                "idx_to_label": {str(i): self.names[i] for i in ids}}
