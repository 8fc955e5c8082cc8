"""Job files: YAML validated into typed config, with `--set a.b=c` overrides.

Errors are one line naming the offending key, e.g. ``stages.clip.batch_sze: unknown key``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from importlib import resources as importlib_resources
from pathlib import Path
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from vlprep.errors import JobError  # noqa: F401 - re-exported
from vlprep.jobs.flow import check_flow
from vlprep.stages.base import AggregateStage, Contract, Resources, Stage, StageOptions

RESOURCE_KEYS = ("num_cpus", "num_gpus", "batch_size", "concurrency", "resources")
BUILTIN_PACKAGE = "vlprep.jobs.builtin"
RECIPES_PACKAGE = "vlprep.jobs.recipes"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RayConfig(_Strict):
    address: str | None = None  # None: start a local Ray; "auto" or "ray://host:10001": a cluster
    num_cpus: int | None = Field(default=None, gt=0)  # local Ray only
    object_store_memory: int | None = Field(default=None, gt=0)  # local Ray only, bytes


class ResourcesConfig(_Strict):
    num_cpus: float = Field(default=1.0, ge=0)
    num_gpus: float = Field(default=0.0, ge=0)
    batch_size: int = Field(default=4, gt=0)
    concurrency: int = Field(default=1, gt=0)
    resources: dict[str, Annotated[float, Field(gt=0)]] = Field(
        default_factory=dict, description="custom Ray resources per worker, e.g. {gpu_node: 1}")


class JobFile(_Strict):
    """The top level of a job file; `stages` is validated per stage kind afterwards."""

    name: str = "job"
    recipe: str | None = Field(default=None, description="a named recipe: its stages, pinned")
    manifest: str
    store: str
    partition_size: int = Field(default=1000, gt=0, description="videos per input partition")
    target_file_bytes: int = Field(default=128 * 2**20, gt=0, description="bytes per Parquet file")
    ray: RayConfig = RayConfig()
    stages: dict[str, dict[str, Any] | None] | list[dict[str, Any]] | None = None


@dataclass(frozen=True)
class StageSpec:
    """One validated stage of a job: enough to build the stage anywhere (e.g. in a Ray worker)."""

    name: str
    cls: type[Stage] | type[AggregateStage]
    options: StageOptions
    resources: Resources
    store: str | None = None  # the job's store, for stages that read earlier tables

    def build(self) -> Stage | AggregateStage:
        return self.cls(self.options, self.resources, self.name, self.store)

    @property
    def contract(self) -> Contract:
        """What the stage reads and writes, as its options make it."""
        return self.cls.contract(self.options)

    @property
    def is_aggregate(self) -> bool:
        return issubclass(self.cls, AggregateStage)


@dataclass(frozen=True)
class Job:
    file: JobFile
    stages: list[StageSpec]

    @property
    def manifest(self) -> str:
        return self.file.manifest

    @property
    def store(self) -> str:
        return self.file.store


def builtin_jobs() -> list[str]:
    root = importlib_resources.files(BUILTIN_PACKAGE)
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def read_job_text(job: str) -> tuple[str, str]:
    """(YAML text, where it came from) for a job file path or a built-in job name."""
    path = Path(job)
    if path.is_file():
        return path.read_text(), str(path)
    if job in builtin_jobs():
        return (importlib_resources.files(BUILTIN_PACKAGE) / f"{job}.yaml").read_text(), job
    known = ", ".join(builtin_jobs())
    raise JobError(f"{job}: no such job file, and not a built-in job ({known})")


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Apply one `a.b.c=value` override; the value is parsed as YAML (numbers, bools, lists)."""
    key, sep, raw = assignment.partition("=")
    if not sep or not key:
        raise JobError(f"--set {assignment}: expected KEY=VALUE")
    value = yaml.safe_load(raw) if raw else ""
    parts = key.split(".")
    node: Any = data
    for depth, part in enumerate(parts[:-1]):
        node = _child(node, part, ".".join(parts[: depth + 1]), create=True)
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, key)] = value
    else:
        node[last] = value


def _child(node: Any, part: str, where: str, create: bool) -> Any:
    if isinstance(node, list):
        return node[_list_index(node, part, where)]
    if not isinstance(node, dict):
        raise JobError(f"--set {where}: not a mapping")
    if node.get(part) is None and create:
        node[part] = {}
    return node[part]


def _list_index(items: list[Any], part: str, where: str) -> int:
    """Stage lists are addressed by position or by the stage's name/kind."""
    if part.isdigit() and int(part) < len(items):
        return int(part)
    for i, item in enumerate(items):
        if isinstance(item, dict) and part in (item.get("name"), item.get("kind")):
            return i
    raise JobError(f"--set {where}: no such stage")


def load_job(job: str, overrides: list[str] = ()) -> Job:
    """Read, override and validate a job; raises JobError with a one-line reason."""
    text, source = read_job_text(job)
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise JobError(f"{source}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise JobError(f"{source}: a job file is a mapping with manifest, store and stages")
    if data.get("recipe"):
        data["stages"] = _with_recipe(str(data["recipe"]), data.get("stages"), source)
    for assignment in overrides:
        apply_override(data, assignment)
    try:
        top = JobFile.model_validate(data)
    except ValidationError as e:
        raise JobError(f"{source}: {_first_error(e)}") from None
    if not top.stages:
        raise JobError(f"{source}: stages: required (or a recipe)")
    specs = _stage_specs(top.stages, source, top.store)
    check_flow(specs, source)
    return Job(top, specs)


def named_recipes() -> list[str]:
    root = importlib_resources.files(RECIPES_PACKAGE)
    return sorted(p.name[:-5] for p in root.iterdir() if p.name.endswith(".yaml"))


def _with_recipe(name: str, stages: Any, source: str) -> dict[str, Any]:
    """The recipe's stages with the job's own stage options laid over them."""
    if name not in named_recipes():
        raise JobError(f"{source}: recipe: unknown recipe {name!r} "
                       f"(known: {', '.join(named_recipes())})")
    text = (importlib_resources.files(RECIPES_PACKAGE) / f"{name}.yaml").read_text()
    merged = {k: dict(v or {}) for k, v in yaml.safe_load(text)["stages"].items()}
    if stages is not None and not isinstance(stages, dict):
        raise JobError(f"{source}: stages: with a recipe, give stages as a map")
    for key, body in (stages or {}).items():
        merged[key] = {**merged.get(key, {}), **(body or {})}
    return merged


def _stage_specs(stages: dict | list, source: str, store: str) -> list[StageSpec]:
    from vlprep.stages import stage_classes

    kinds = stage_classes()
    entries: list[tuple[str, str, dict[str, Any]]] = []
    if isinstance(stages, dict):
        for name, body in stages.items():
            body = dict(body or {})
            entries.append((f"stages.{name}", name, body))
    else:
        for i, body in enumerate(stages):
            body = dict(body)
            where = f"stages.{i}"
            if "kind" not in body:
                raise JobError(f"{source}: {where}.kind: required in a stage list")
            entries.append((where, body.pop("name", None) or body["kind"], body))
    if not entries:
        raise JobError(f"{source}: stages: at least one stage is required")
    specs, seen = [], set()
    for where, name, body in entries:
        kind = body.pop("kind", name)
        if kind not in kinds:
            raise JobError(f"{source}: {where}: unknown stage kind {kind!r} "
                           f"(known: {', '.join(sorted(kinds))})")
        if name in seen:
            raise JobError(f"{source}: {where}: duplicate stage name {name!r}")
        seen.add(name)
        res_body = {k: body.pop(k) for k in RESOURCE_KEYS if k in body}
        cls = kinds[kind]
        try:
            res = ResourcesConfig.model_validate(res_body)
            options = cls.Options.model_validate(body)
        except ValidationError as e:
            raise JobError(f"{source}: {_first_error(e, prefix=where)}") from None
        resources = replace(cls.default_resources, **res.model_dump(exclude_unset=True))
        specs.append(StageSpec(name, cls, options, resources, store))
    return specs


def _first_error(error: ValidationError, prefix: str = "") -> str:
    """One line naming the key: `stages.clip.batch_sze: unknown key`."""
    first = error.errors()[0]
    loc = ".".join(str(p) for p in (prefix, *first["loc"]) if p != "")
    if first["type"] == "extra_forbidden":
        return f"{loc}: unknown key"
    if first["type"] == "missing":
        return f"{loc}: required key missing"
    return f"{loc}: {first['msg']} (got {first.get('input')!r})"
