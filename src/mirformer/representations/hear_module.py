"""The timestamp embeddings of any HEAR 2021 module (hearbenchmark.com), frozen, as frames.

A HEAR module is an importable Python module with ``load_model(model_file_path="")`` (a model with
``sample_rate``, ``timestamp_embedding_size`` and ``scene_embedding_size``),
``get_timestamp_embeddings(audio [n_sounds, n_samples], model) -> (embeddings [n_sounds,
n_timestamps, dim], timestamps [n_sounds, n_timestamps] in ms)`` and ``get_scene_embeddings``.
``mirformer.hear`` is one (its weights: an encoder file), so a model can read another's embeddings:
``--set hear={module: mirformer.hear, weights: runs/.../encoder.pt} --set spectroformer.input=hear``.

At load time the module is called on silence ("probes") to measure its hop and first timestamp
(timestamps must be evenly spaced) and how its frame count follows the length: from 2 s on, a
count ``floor((n + c) / hop)`` is derived and verified on further lengths; shorter lengths, and
every length of a module the rule does not fit, are counted by calling the module on zeros once
per length (cached). The module's identity (name, ``__version__``, the weights' SHA-256) keys the
feature store; an encoder file refers to the weights by path and SHA-256.
"""

from __future__ import annotations

import hashlib
import importlib
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
import torch

from mirformer.errors import CheckpointError, ConfigError, MirformerError
from mirformer.representations.base import Layout, Representation, register_representation

HEAR_VERSION = "1"
API_FUNCTIONS = ("load_model", "get_timestamp_embeddings", "get_scene_embeddings")
MODEL_ATTRIBUTES = ("sample_rate", "timestamp_embedding_size", "scene_embedding_size")
PROBE_SECONDS = 2.0  # HEAR modules take at least this much; shorter sounds are counted one by one
TIMESTAMP_TOLERANCE_MS = 1e-3  # float32 milliseconds of a 20-minute sound still resolve 0.1 ms / 1000
_LOADED: dict[tuple, "HearModule"] = {}  # the last configured module (see ``HearModule._given``)


@dataclass(frozen=True)
class HearConfig:
    """A HEAR module to read.

    Parameters
    ----------
    module : str
        Importable module name (``mirformer.hear``, or a user's package); "" until set.
    weights : str
        File passed to its ``load_model`` ("" : none, ``load_model()`` is called without one).
    """

    module: str = ""
    weights: str = ""


def file_sha256(path: str | Path) -> str:
    """SHA-256 hex of a file's contents."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _import_api(name: str) -> ModuleType:
    """Module ``name``, or a ``ConfigError`` naming it and what it lacks of the HEAR API."""
    if not name:
        raise ConfigError("hear.module is empty: name an importable HEAR module, e.g. mirformer.hear")
    try:
        module = importlib.import_module(name)
    except Exception as e:  # a user's package may fail in any way while importing
        raise ConfigError(f"HEAR module {name!r} cannot be imported: {type(e).__name__}: {e}") from e
    missing = [f for f in API_FUNCTIONS if not callable(getattr(module, f, None))]
    if missing:
        raise ConfigError(f"HEAR module {name!r} lacks the HEAR API function(s) {', '.join(missing)}")
    return module


@register_representation
class HearModule(Representation):
    """A HEAR module's timestamp embeddings [shape=(frames, timestamp_embedding_size)], float32,
    at the module model's ``sample_rate``; its own timestamps give ``times``.

    Parameters
    ----------
    module : str
        Importable name of the HEAR module.
    weights : str
        File for its ``load_model`` ("": none).
    dtype : {"float32", "float16"}
        How the feature store keeps the frames.
    """

    name, input_name, label, config_key, config_class = "hear", "hear", "HEAR module", "hear", HearConfig
    spec_prefix, spec_field = "hear", "module"
    DTYPES = ("float32", "float16")

    def __init__(self, module: str, *, weights: str = "", dtype: str = "float32"):
        if dtype not in self.DTYPES:
            raise ConfigError(f"HearModule dtype must be one of {self.DTYPES}, got {dtype!r}")
        weights_path = Path(weights).expanduser() if weights else None
        if weights_path is not None and not weights_path.is_file():
            raise ConfigError(f"HEAR module {module!r}: its weights file {weights} does not exist")
        self.module_name, self.dtype = module, np.dtype(dtype)
        self.module = _import_api(module)
        self.weights = str(weights_path.resolve()) if weights_path else ""
        self.weights_sha256 = file_sha256(weights_path) if weights_path else None
        self.model = self.module.load_model(self.weights) if weights_path else self.module.load_model()
        missing = [a for a in MODEL_ATTRIBUTES if not hasattr(self.model, a)]
        if missing:
            raise ConfigError(f"HEAR module {module!r}: its load_model() gives a model without {', '.join(missing)}")
        if isinstance(self.model, torch.nn.Module):
            self.model.eval()  # frozen: dropout off, no statistics updated
        self.sample_rate = int(self.model.sample_rate)
        self.layout = Layout(dim=int(self.model.timestamp_embedding_size))
        self._counts: dict[int, int] = {}  # samples -> frames, of lengths the rule does not cover
        self._probe()

    # ---- from a comparison's config -----------------------------------------------------------
    @classmethod
    def default_config(cls) -> HearConfig:
        return HearConfig()

    @classmethod
    def _given(cls, config: HearConfig, dtype: str = "float32") -> HearModule:
        """The module ``config`` names, loaded and probed once however often asked."""
        path = Path(config.weights).expanduser() if config.weights else None
        stat = path.stat() if path is not None and path.exists() else None
        key = (config.module, path and str(path.resolve()), stat and stat.st_mtime_ns, stat and stat.st_size, dtype)
        if key not in _LOADED:
            _LOADED.clear()  # one module held at a time: a HEAR model may be large
            _LOADED[key] = cls(config.module, weights=config.weights, dtype=dtype)
        return _LOADED[key]

    @classmethod
    def check_config(cls, config: HearConfig) -> None:
        """The module imports, offers the API, loads its weights and has evenly spaced timestamps."""
        cls._given(config)

    @classmethod
    def frame_rate(cls, config: HearConfig) -> float:
        return cls._given(config).frames_per_second

    @classmethod
    def from_config(cls, config: HearConfig, *, context=None, dtype: str = "float32") -> HearModule:
        return cls._given(config, dtype)

    def settings(self) -> HearConfig:
        return HearConfig(self.module_name, self.weights)

    def about(self) -> dict:
        """The module, its weights, rate, width, frame rate and how its frame counts are known."""
        return {"module": self.module_name, "module_version": self.module_version, "weights": self.weights,
                "weights_sha256": self.weights_sha256, "sample_rate": self.sample_rate, "dim": self.dim,
                "frames_per_second": self.frames_per_second, "counting": self.counting}

    @staticmethod
    def report_lines(about: dict) -> list[str]:
        a = about
        version = f" {a['module_version']}" if a.get("module_version") else ""
        weights = f"weights `{a['weights']}` (SHA-256 `{a['weights_sha256'][:12]}`)" if a.get("weights") \
            else "no weights file"
        window = f", windows of {a['window_frames']} frames" if a.get("window_frames") else ""
        return ["## HEAR module", "",
                f"The models read the frozen timestamp embeddings of the HEAR module `{a['module']}`{version}, "
                f"{weights}: {a['dim']} values per frame at {a['sample_rate']} Hz, "
                f"{a['frames_per_second']:.4g} frames/s{window}.", ""]

    # ---- probing ------------------------------------------------------------------------------
    @property
    def module_version(self) -> str | None:
        version = getattr(self.module, "__version__", None)
        return None if version is None else str(version)

    def _call(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The module on mono ``y`` [shape=(n,)]: (embeddings (frames, dim) float32, timestamps
        (frames,) in ms float64), shapes checked."""
        with torch.no_grad():
            emb, ts = self.module.get_timestamp_embeddings(torch.from_numpy(np.asarray(y, np.float32))[None],
                                                           self.model)
        emb, ts = emb.detach().cpu().float().numpy(), ts.detach().cpu().double().numpy()
        if emb.ndim != 3 or emb.shape[0] != 1 or emb.shape[2] != self.dim or ts.shape != emb.shape[:2]:
            raise MirformerError(f"HEAR module {self.module_name!r} gave embeddings of shape {emb.shape} and "
                                 f"timestamps of shape {ts.shape} for one sound of {len(y)} samples; expected "
                                 f"(1, frames, {self.dim}) and (1, frames)")
        return emb[0], ts[0]

    def _probe(self) -> None:
        """Measure the hop and first timestamp on silence (refusing uneven timestamps), and derive
        the frame-count rule ``floor((n + c) / hop)`` for ``n >= PROBE_SECONDS`` when it fits."""
        n0 = round(PROBE_SECONDS * self.sample_rate)
        _, ts = self._call(np.zeros(n0, np.float32))
        if len(ts) < 3:
            raise ConfigError(f"HEAR module {self.module_name!r} gives {len(ts)} timestamp(s) for "
                              f"{PROBE_SECONDS:g} s of audio; at least 3 are needed to measure its hop")
        self.first_ms, self.hop_ms = float(ts[0]), float(ts[-1] - ts[0]) / (len(ts) - 1)
        self._check_spacing(ts, n0)
        hop = self.hop_ms * self.sample_rate / 1000.0
        # float32 milliseconds blur a whole-sample hop; snap it so the frame rate is exact.
        self.hop_samples = float(round(hop)) if abs(hop - round(hop)) < 1e-3 else hop
        self.frames_per_second = self.sample_rate / self.hop_samples
        self.offset, self.counting, self._min_rule = None, "measured", n0
        counts = {n0: len(ts)}

        def count(n: int) -> int:
            if n not in counts:
                _, t = self._call(np.zeros(n, np.float32))
                self._check_spacing(t, n)
                counts[n] = len(t)
            return counts[n]

        # The first length past n0 that gains a frame pins c (to a sample for whole-sample hops).
        lo, hi = n0, n0 + int(np.ceil(self.hop_samples)) + 1
        if count(hi) <= count(lo):
            return
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (mid, hi) if count(mid) == counts[n0] else (lo, mid)
        offset = (counts[n0] + 1) * self.hop_samples - hi
        checks = [n0 + 1, hi, n0 + round(2.5 * self.hop_samples) + 7, 2 * n0 + 17, 3 * n0 - 5]
        if all(count(n) == self._rule(n, offset) for n in checks):
            self.offset, self.counting = offset, "derived"

    def _check_spacing(self, ts: np.ndarray, n: int) -> None:
        expected = self.first_ms + np.arange(len(ts)) * self.hop_ms
        if not np.allclose(ts, expected, rtol=1e-6, atol=TIMESTAMP_TOLERANCE_MS):
            worst = int(np.argmax(np.abs(ts - expected)))
            raise ConfigError(f"HEAR module {self.module_name!r}: its timestamps are not evenly spaced (for {n} "
                              f"samples of silence, timestamp {worst} is {ts[worst]:.4f} ms where a constant hop of "
                              f"{self.hop_ms:.4f} ms from {self.first_ms:.4f} ms puts {expected[worst]:.4f} ms); "
                              "mirformer reads frames at one constant rate")

    def _rule(self, n: int, offset: float) -> int:
        return max(0, int(np.floor((n + offset) / self.hop_samples + 1e-9)))

    # ---- encoding -----------------------------------------------------------------------------
    def config_dict(self) -> dict:
        key = {"module": self.module_name, "module_version": self.module_version,
               "weights_sha256": self.weights_sha256, "version": HEAR_VERSION}
        return key if self.dtype == np.float32 else {**key, "dtype": self.dtype.name}

    def encode(self, y: np.ndarray) -> np.ndarray:
        """Mono audio (n,) at ``sample_rate`` -> the module's timestamp embeddings (n_frames(n), dim)
        float32, exactly as it gives them."""
        if len(y) == 0:
            return np.zeros((0, self.dim), np.float32)
        emb, _ = self._call(y)
        n = len(y)
        if self.offset is None or n < self._min_rule:
            self._counts[n] = len(emb)  # a measured length need not be probed again
        elif len(emb) != self._rule(n, self.offset):
            raise MirformerError(f"HEAR module {self.module_name!r} gave {len(emb)} frames for {n} samples; its "
                                 f"probes predicted {self._rule(n, self.offset)}")
        return np.ascontiguousarray(emb)

    def n_frames(self, n_samples: int) -> int:
        """Frames for ``n_samples``: by the derived rule from ``PROBE_SECONDS`` on, else measured
        once on silence of that length."""
        if n_samples == 0:
            return 0
        if self.offset is not None and n_samples >= self._min_rule:
            return self._rule(n_samples, self.offset)
        if n_samples not in self._counts:
            self._counts[n_samples] = len(self._call(np.zeros(n_samples, np.float32))[1])
        return self._counts[n_samples]

    def times(self, n_frames: int) -> np.ndarray:
        """The module's timestamp of each frame in seconds [shape=(n_frames,)] (HEAR stamps a
        frame's centre, as ``Representation.times`` does)."""
        return (self.first_ms + np.arange(n_frames) * self.hop_ms) / 1000.0

    # ---- the encoder file ---------------------------------------------------------------------
    def to_block(self) -> dict:
        return {"hear": {"module": self.module_name, "module_version": self.module_version,
                         "weights": self.weights, "weights_sha256": self.weights_sha256}, "dtype": self.dtype.name}

    @classmethod
    def from_block(cls, block: dict, *, source: str) -> HearModule:
        """The module an encoder file at ``source`` refers to, with the very weights file it was
        trained with (same SHA-256) and the same module version."""
        info = block["hear"]
        if info["weights"]:
            path = Path(info["weights"])
            if not path.is_file():
                raise CheckpointError(f"{source}: the weights of its HEAR module {info['module']!r} are missing: "
                                      f"{path} (SHA-256 {info['weights_sha256']})")
            found = file_sha256(path)
            if found != info["weights_sha256"]:
                raise CheckpointError(f"{source}: the weights file {path} of its HEAR module {info['module']!r} has "
                                      f"changed: SHA-256 {found}, the encoder was trained with "
                                      f"{info['weights_sha256']}")
        rep = cls(info["module"], weights=info["weights"], dtype=block["dtype"])
        if rep.module_version != info["module_version"]:
            raise CheckpointError(f"{source}: HEAR module {info['module']!r} is version {rep.module_version}; the "
                                  f"encoder was trained with version {info['module_version']}")
        return rep
