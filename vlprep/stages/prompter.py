"""ALPRO prompter soft labels: K crops per video, each scored against the entity prompts.

Runs after an `entities` stage (in a later pass over the videos): ``setup`` reads the store's
`entities` table and embeds every entity's prompt ensemble once per worker. Per video, K
boxes are drawn (:mod:`vlprep.stages.crops`), the same box is cut from every sampled frame,
the crop's frame embeddings are averaged into one normalised crop embedding, and
soft labels = softmax(crop @ prompts.T / temperature) over all entities. A `soft_labels` row
keeps the box, the frame indices, the top-k entity ids and probabilities, the top
probability, and whether it is under ``min_top_prob`` (ALPRO ignores such crops; the public
code compares the argmax *index* with 0.2 instead: ``ignore_rule: argmax_index`` copies it).
Rows are kept, only flagged, so a trainer may pick its own threshold; ``store_full`` keeps the
whole distribution (fp16), which ALPRO's PEM loss uses.

``prompter: alpro`` is ALPRO's released prompter (:mod:`vlprep.models.alpro`): each crop is one
video of the sampled frames through the TimeSformer (no frame averaging), prompts through
BERT's text layers, the stored temperature; its prompt ensembles are cached on disk by
(checkpoint sha256, entities, templates, tokenizer vocabulary, precision).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from pydantic import ConfigDict, Field, field_validator, model_validator

from vlprep.columns import list_rows
from vlprep.models.accel import Precision
from vlprep.schemas import SOFT_LABELS
from vlprep.stages.backbone import BackboneStage, Encoder, ModelOptions, Runtime
from vlprep.stages.base import Contract, Record, Resources, VideoError
from vlprep.stages.crops import crop_view, sample_boxes
from vlprep.stages.frames import SampledFrames

FULL_TYPE = pa.list_(pa.float16())
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff")


class PrompterOptions(ModelOptions):
    """`checkpoint`: a CLIP model directory (both towers), a VTC checkpoint directory, or
    ALPRO's `prompter_pretrained.pt` (`prompter: alpro`, with a BERT `tokenizer` directory)."""

    # `model_config` is pydantic's own attribute, so the job key is an alias of `clip_config`.
    model_config = ConfigDict(populate_by_name=True)
    speed_only = frozenset({"frame_batch", "text_batch", "prompt_cache"})

    prompter: Literal["clip", "alpro-vtc", "alpro"] = Field(
        default="clip", description="CLIP model dir, a `vlprep train alpro --vtc-only` dir, "
        "or alpro: ALPRO's prompter_pretrained.pt")
    clip_config: dict[str, Any] | None = Field(
        default=None, alias="model_config",
        description="CLIPConfig overrides for init: random (vision_config, text_config, ...)")
    tokenizer: str | None = Field(
        default=None, description="CLIP tokenizer dir or builtin:demo (default: checkpoint); "
        "alpro: a bert-base-uncased tokenizer dir")
    num_crops: int = Field(default=4, gt=0, description="K crops per video")
    crop_seed: int = Field(default=0, ge=0, description="crops depend on (crop_seed, video)")
    crop_scale: tuple[float, float] = (0.3, 0.5)
    crop_ratio: tuple[float, float] = (0.3, 1 / 0.3)
    patch_size: int = Field(default=16, gt=0)
    crop_view: Literal["masked", "resized"] = "masked"
    templates: Literal["auto", "video", "image"] = Field(
        default="auto", description="auto: image prompts for image files, else video")
    top_k: int = Field(default=10, gt=0)
    temperature: float | None = Field(default=None, gt=0, description="default: the model's")
    min_top_prob: float = Field(default=0.2, ge=0, le=1, description="flag rows below")
    ignore_rule: Literal["top_prob", "argmax_index"] = Field(
        default="top_prob", description="low_confidence: top_prob < min_top_prob, or ALPRO's "
        "literal code (argmax index < 0.2: the top entity is entity 0)")
    store_full: bool = Field(default=False, description="also store every entity's "
                             "probability (probs_full, fp16)")
    precision: Precision = Field(default="fp32", description="alpro: fp32 as ALPRO; "
                                 "fp16/bf16 autocast for speed")
    prompt_cache: str = Field(default="auto", description="alpro: directory of cached prompt "
                              "ensembles (auto: $VLPREP_CACHE/prompts or ~/.cache/vlprep), off")
    frame_batch: int = Field(default=64, gt=0, description="crop images per forward pass")
    text_batch: int = Field(default=256, gt=0, description="prompts per forward pass")

    @field_validator("crop_scale", "crop_ratio")
    @classmethod
    def _range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not 0 < value[0] <= value[1]:
            raise ValueError("expected 0 < low <= high")
        return value

    @model_validator(mode="after")
    def _checkpoint_or_random(self) -> PrompterOptions:
        from vlprep.models.tokenizers import check_spec

        if self.tokenizer is not None:
            check_spec(self.tokenizer)
        if self.init == "random":
            if self.checkpoint is not None:
                raise ValueError("give either a checkpoint or init: random, not both")
            if self.prompter == "alpro-vtc":
                raise ValueError("init: random is for prompter: clip or alpro")
            if self.tokenizer is None:
                raise ValueError("init: random needs a tokenizer (a directory or builtin:demo)")
            return self
        if self.clip_config is not None:
            raise ValueError("model_config applies to init: random only")
        if self.checkpoint is None:
            raise ValueError("checkpoint is required (or set init: random for a demo)")
        if self.prompter == "alpro":
            if not Path(self.checkpoint).is_file():
                raise ValueError(f"checkpoint {self.checkpoint!r} is not a file "
                                 "(ALPRO's prompter_pretrained.pt)")
            if self.tokenizer is None:
                raise ValueError("prompter: alpro needs a tokenizer (a bert-base-uncased "
                                 "tokenizer directory)")
            return self
        if not Path(self.checkpoint).is_dir():
            raise ValueError(f"checkpoint {self.checkpoint!r} is not a directory")
        return self


def build_prompter(opts: PrompterOptions):
    """The prompter model the options describe, on its device."""
    from vlprep.models.clip import resolve_device

    device = resolve_device(opts.device)
    if opts.prompter == "alpro":
        from vlprep.models.alpro import AlproPrompter
        from vlprep.models.tokenizers import load_tokenizer

        # frame_batch counts crop frames, as for the other prompters: T frames a crop video
        speed = {"precision": opts.precision, "video_batch": max(1, opts.frame_batch // 4),
                 "text_batch": opts.text_batch}
        if opts.init == "random":
            return AlproPrompter.random(load_tokenizer(opts.tokenizer or "", "bert"),
                                        opts.seed, str(device), **speed)
        return AlproPrompter.from_checkpoint(opts.checkpoint_path, tokenizer=opts.tokenizer,
                                             device=str(device), **speed)
    if opts.prompter == "alpro-vtc":
        from vlprep.models.vtc import VtcPrompter, load_vtc

        model, tokenizer, config = load_vtc(opts.checkpoint_path)
        return VtcPrompter(model, tokenizer, config, device, opts.frame_batch,
                           text_batch=opts.text_batch)
    from vlprep.models.prompter import ClipPrompter, load_clip_model, random_clip_model
    from vlprep.models.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(opts.tokenizer or opts.checkpoint_path, "clip")
    if opts.init == "random":
        model = random_clip_model(tokenizer, opts.seed, opts.clip_config)
    else:
        model = load_clip_model(opts.checkpoint_path)
    return ClipPrompter(model, tokenizer, device, opts.frame_batch, opts.text_batch)


class PrompterStage(BackboneStage[PrompterOptions], kind="prompter", table="soft_labels",
                    resources=Resources(num_cpus=1.0, batch_size=4, concurrency=1)):
    """Emits K `soft_labels` rows per video; adds nothing to the record.

    The inputs of a video are its K crop views (T frames each); a video model (``prompter:
    alpro``) embeds each crop as one video, an image model each frame, averaged per crop.
    """

    entities: list[str] | None = None  # read from the store, unless set before setup
    prompter: Any = None  # the prompter model, unless set before setup (tests, planners)

    @classmethod
    def contract(cls, options: PrompterOptions) -> Contract:
        return Contract(reads=(options.frames,), needs=("entities",), tables=cls.tables)

    @property
    def video_model(self) -> bool:
        """ALPRO's prompter embeds a crop as a video; the others embed images."""
        return self.options.prompter == "alpro"

    def load(self) -> Runtime:
        """Entities from the store and the model, unless set before (tests, planners)."""
        if getattr(self, "prompts", None) is None:
            self.prompts: dict[str, np.ndarray] = {}
        if self.entities is None:
            from vlprep.stages.entities import read_entities

            if self.store is None:
                raise RuntimeError("the prompter stage reads the job's store: no store given")
            self.entities = read_entities(self.store)
        if not self.entities:
            raise RuntimeError(f"store {self.store}: the entities table is empty")
        if self.prompter is None:
            self.prompter = build_prompter(self.options)
        return Encoder("torch", self.embed_videos if self.video_model else self.pooled_frames,
                       self.prompter)

    def prompt_embeddings(self, templates: str) -> np.ndarray:
        """E x D prompt ensemble of the entities for "video" or "image" templates (cached)."""
        from vlprep.models.prompter import TEMPLATES, prompt_embeddings

        self.setup()
        if templates not in self.prompts:
            entities, chosen, model = self.entities, TEMPLATES[templates], self.prompter

            def compute() -> np.ndarray:
                return prompt_embeddings(model, entities, chosen)

            directory = self.prompt_cache_directory()
            if directory is None:
                self.prompts[templates] = compute()
            else:
                from vlprep.models.prompt_cache import cache_key, cached, vocabulary_digest

                sha = self.options.sha256 or model.sha256
                key = cache_key(sha.lower(), entities, chosen, precision=self.options.precision,
                                tokenizer=vocabulary_digest(model.tokenizer),
                                device=model.device.type)
                self.prompts[templates] = cached(directory, key, compute)
        return self.prompts[templates]

    def prompt_cache_directory(self) -> Path | None:
        """Where prompt ensembles are cached (prompter: alpro), None for no cache."""
        from vlprep.models.prompt_cache import default_directory

        opts = self.options
        if opts.prompter != "alpro" or opts.prompt_cache == "off":
            return None
        return default_directory() if opts.prompt_cache == "auto" else Path(opts.prompt_cache)

    def templates_for(self, record: Record) -> str:
        opts = self.options
        if opts.templates != "auto":
            return opts.templates
        return "image" if str(record.get("path", "")).lower().endswith(IMAGE_SUFFIXES) \
            else "video"

    def inputs(self, record: Record, sampled: SampledFrames) -> tuple[Any, Any]:
        """K boxes of the video, the same box cut from every frame: K crop views."""
        opts = self.options
        size = self.prompter.image_size
        h, w = sampled.frames.shape[1:3]
        if self.video_model and opts.crop_view == "masked" and (h, w) != (size, size):
            raise VideoError(f"frames under {opts.frames!r} are {w}x{h}; the prompter "
                             f"takes {size}x{size} (sample at size {size})")
        boxes = sample_boxes(record["video_id"], opts.crop_seed, opts.num_crops, h, w,
                             opts.patch_size, opts.crop_scale, opts.crop_ratio)
        frames = sampled.frames
        if self.video_model and len(frames) == 1:  # an image: ALPRO repeats it num_frm times
            frames = np.repeat(frames, self.prompter.num_frames, axis=0)
        return [crop_view(frames, box, opts.crop_view, size) for box in boxes], boxes

    def batch_inputs(self, parts: list[Any]) -> list[np.ndarray]:
        """All crop views of the batch, in order (they may differ in frame count)."""
        return [view for views in parts for view in views]

    def embed_videos(self, views: list[np.ndarray]) -> np.ndarray:
        """One embedding per crop video (T x H x W x 3 each), batched across the videos of
        the batch by frame count."""
        out = np.zeros((len(views), 0), np.float32)
        by_length: dict[int, list[int]] = {}
        for i, view in enumerate(views):
            by_length.setdefault(len(view), []).append(i)
        for indices in by_length.values():
            emb = self.prompter.embed_videos(np.stack([views[i] for i in indices]))
            if out.shape[1] == 0:
                out = np.zeros((len(views), emb.shape[1]), np.float32)
            out[indices] = emb
        return out

    def pooled_frames(self, views: list[np.ndarray]) -> np.ndarray:
        """An image model: every crop frame embedded, averaged per crop and normalised."""
        embeddings = self.prompter.embed_images(np.concatenate(views))
        out, start = [], 0
        for view in views:
            pooled = embeddings[start:start + len(view)].mean(axis=0)
            start += len(view)
            out.append(pooled / max(float(np.linalg.norm(pooled)), 1e-12))
        return np.stack(out)

    def rows(self, record: Record, sampled: SampledFrames, outputs: np.ndarray, extra: Any
             ) -> pa.Table:
        """The K crops' soft labels: each crop embedding scored against the prompts."""
        return self.soft_label_rows(record, sampled.indices, extra, outputs)

    def soft_label_rows(self, record: Record, indices: np.ndarray, boxes: list,
                        crops: np.ndarray) -> pa.Table:
        from vlprep.models.prompter import float32_down, soft_labels, top_k

        opts = self.options
        templates = self.templates_for(record)
        temperature = opts.temperature or self.prompter.temperature
        probs = soft_labels(crops, self.prompt_embeddings(templates), temperature)
        ids, best = top_k(probs, opts.top_k)
        best = float32_down(best)
        if opts.ignore_rule == "argmax_index":
            from vlprep.models.alpro import alpro_ignore

            low = alpro_ignore(probs)
        else:
            low = best[:, 0] < opts.min_top_prob
        full = (list_rows(probs.astype(np.float16), pa.float16()) if opts.store_full
                else pa.nulls(len(boxes), FULL_TYPE))
        k = len(boxes)
        frame_indices = [int(i) for i in indices]
        return pa.table({
            "video_id": [record["video_id"]] * k,
            "crop": pa.array(range(k), pa.int16()),
            "left": pa.array([b.left for b in boxes], pa.int32()),
            "top": pa.array([b.top for b in boxes], pa.int32()),
            "width": pa.array([b.width for b in boxes], pa.int32()),
            "height": pa.array([b.height for b in boxes], pa.int32()),
            "frame_indices": [frame_indices] * k,
            "templates": [templates] * k,
            "entity_ids": ids.astype(np.int32).tolist(),
            "probs": best.tolist(),
            "top_prob": pa.array(best[:, 0]),
            "low_confidence": pa.array(low),
            "probs_full": full,
        }, schema=SOFT_LABELS)
