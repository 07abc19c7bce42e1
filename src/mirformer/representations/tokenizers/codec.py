"""Neural codecs as tokenizers: a Hugging Face ``transformers`` codec read from a local folder.

A codec folder is what ``save_pretrained`` writes and the official model pages distribute:
``config.json`` and ``model.safetensors``. It is read offline (``local_files_only=True``); mirformer
never downloads. One module per codec family (``encodec``, ``dac``, ``mimi``, ``xcodec``) subclasses
``CodecTokenizer`` and registers itself for the config's ``model_type``: adding a codec is one
file and its name in ``FAMILIES``.

An encoder file does not embed a codec (its weights are 90-400 MB): it refers to the folder by
path and SHA-256 (``CodecTokenizer.to_block``, ``codec_from_block``).
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
import torch

from mirformer.errors import CheckpointError, ConfigError
from mirformer.representations.tokenizers.base import Tokenizer

FAMILIES = ("encodec", "dac", "mimi", "xcodec")  # modules of this package, each registering its codecs
WEIGHTS = "model.safetensors"
_CODECS: dict[str, type[CodecTokenizer]] = {}  # config model_type -> tokenizer class


def register_codec(cls: type[CodecTokenizer]) -> type[CodecTokenizer]:
    """Class decorator: ``cls`` reads folders whose config has ``model_type == cls.model_type``."""
    _CODECS[cls.model_type] = cls
    return cls


def codec_classes() -> dict[str, type[CodecTokenizer]]:
    """The supported codecs by config ``model_type`` (importing each family once)."""
    for family in FAMILIES:
        importlib.import_module(f"{__package__}.{family}")
    return dict(_CODECS)


def folder_sha256(folder: str | Path) -> str:
    """SHA-256 hex of a codec folder's ``config.json`` and weights (names and contents)."""
    h = hashlib.sha256()
    for name in ("config.json", WEIGHTS):
        h.update(name.encode() + b"\0")
        with open(Path(folder) / name, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()


def _checked_folder(folder: Path) -> tuple[dict, type[CodecTokenizer]]:
    """The folder's config and tokenizer class, or a ``ConfigError`` / ``CheckpointError`` naming
    the folder, before any weights are read."""
    try:
        config = json.loads((folder / "config.json").read_text())
    except FileNotFoundError:
        raise ConfigError(f"{folder}: no config.json: a codec folder holds config.json and {WEIGHTS}, "
                          "as save_pretrained writes them") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"{folder}/config.json is not readable JSON: {e}") from None
    codecs = codec_classes()
    model_type = config.get("model_type") if isinstance(config, dict) else None
    if model_type not in codecs:
        raise ConfigError(f"{folder}: model_type {model_type!r} is not a supported codec; supported: "
                          f"{', '.join(sorted(codecs))}")
    if not (folder / WEIGHTS).is_file():
        raise CheckpointError(f"{folder}: no {WEIGHTS}: the codec's weights are read from safetensors only "
                              "(download the whole folder of the model page)")
    return config, codecs[model_type]


def open_codec(path: str | Path) -> CodecTokenizer:
    """The codec in folder ``path`` (``config.json`` + ``model.safetensors``), on the CPU, in eval mode."""
    folder = Path(path).expanduser()
    _, cls = _checked_folder(folder)
    return cls.load(folder, identity=folder_sha256(folder))


def codec_from_block(block: dict, *, source: str) -> CodecTokenizer:
    """The codec an encoder file at ``source`` refers to (``CodecTokenizer.to_block``): its folder
    at the stored path or, if that is missing, a folder of the same name beside the encoder file,
    with the stored SHA-256."""
    info = block["codec"]
    stored, expected = Path(info["path"]), info["sha256"]
    beside = Path(source).parent / stored.name
    found = [f for f in dict.fromkeys([stored, beside]) if f.is_dir()]
    wanted = (f"the {info['model_type']} codec folder {stored} (SHA-256 {expected}); put that folder at {stored} "
              f"or beside the encoder file as {beside}")
    if not found:
        raise CheckpointError(f"{source}: its tokenizer is missing: {wanted}")
    hashes = {}
    for folder in found:
        _, cls = _checked_folder(folder)
        hashes[folder] = folder_sha256(folder)
        if hashes[folder] == expected:
            return cls.load(folder, identity=expected)
    seen = "; ".join(f"{f} has SHA-256 {h}" for f, h in hashes.items())
    raise CheckpointError(f"{source}: its tokenizer is a different codec: {seen}; the encoder was trained with "
                          f"{wanted}")


class CodecTokenizer(Tokenizer):
    """A ``transformers`` codec (``model``, eval mode, CPU) read from folder ``source``.

    Subclasses set ``model_type`` (the config's), ``model_class`` (the ``transformers`` class),
    ``kind``, and in ``__init__`` ``hop_length``, ``n_codebooks`` and ``vocab_size``; they
    implement ``encode_stream``, ``n_frames``, ``_vectors`` and ``decode``.
    """

    model_type: str
    model_class: str

    def __init__(self, model, *, source: str, identity: str, chunk_seconds: float = 10.0):
        assert chunk_seconds > 0, f"chunk_seconds must be > 0, got {chunk_seconds}"
        self.model, self.source, self.identity = model, source, identity
        config = model.config  # X-Codec's names its rate ``sample_rate``, the others ``sampling_rate``
        self.sample_rate = int(getattr(config, "sampling_rate", None) or config.sample_rate)
        self.chunk_seconds = chunk_seconds
        self._books: torch.Tensor | None = None

    @classmethod
    def load(cls, folder: Path, *, identity: str) -> CodecTokenizer:
        import transformers  # lazily: importing it takes seconds, and most runs need no codec

        bars = transformers.utils.logging.is_progress_bar_enabled()
        transformers.utils.logging.disable_progress_bar()  # its "Loading weights" bar would break ours
        try:
            model = getattr(transformers, cls.model_class).from_pretrained(
                folder, local_files_only=True, use_safetensors=True, dtype=torch.float32)
        except (OSError, ValueError, RuntimeError) as e:
            raise CheckpointError(f"{folder}: the {cls.kind} codec does not load: {e}") from None
        finally:
            if bars:
                transformers.utils.logging.enable_progress_bar()
        return cls(model.eval(), source=str(folder), identity=identity)

    def _check_codebooks(self, codebooks: int) -> None:
        if not 1 <= codebooks <= self.n_codebooks:
            raise ConfigError(f"{self.source}: {codebooks} codebooks asked for; the codec has {self.n_codebooks}")

    def _chunk_frames(self, least: int) -> int:
        """Frames per encoded chunk: ``chunk_seconds`` of audio, at least ``least``."""
        return max(least, round(self.chunk_seconds * self.sample_rate / self.hop_length))

    @staticmethod
    def _audio(blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        return (np.asarray(b, np.float32) for b in blocks)

    def codebooks(self) -> torch.Tensor:
        if self._books is None:  # computed once: token representations ask for it per encode
            with torch.inference_mode():
                self._books = self._vectors().float().contiguous()
        return self._books

    def _vectors(self) -> torch.Tensor:
        """What ``codebooks`` returns: (n_codebooks, vocab_size, dim)."""
        raise NotImplementedError

    def describe(self) -> dict:
        return {"kind": self.kind, "checkpoint": self.source, "identity": self.identity, "sha1": self.identity,
                "model_type": self.model_type, "sample_rate": self.sample_rate, "hop_length": self.hop_length,
                "vocab_size": self.vocab_size, "emb_width": int(self.codebooks().shape[-1]),
                "codebooks_in_model": self.n_codebooks}

    def to_block(self) -> dict:
        """A reference to the folder (path, SHA-256, config), not the weights."""
        return {"codec": {"path": str(Path(self.source).resolve()), "sha256": self.identity,
                          "model_type": self.model_type, "config": self.model.config.to_dict()}}
