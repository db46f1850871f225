"""The GE2E speaker encoder that Resemblyzer's wheel ships (Apache-2.0), run with numpy alone.

The wheel carries the weights (`resemblyzer/pretrained.pt`, a checkpoint in PyTorch's legacy format) but its
package imports librosa and webrtcvad, and the Lambda image has no torch. So the wheel is installed without its
dependencies and never imported: its checkpoint is read here with a restricted unpickler (plain data and
tensors only, bounds checked), its 40-band mel features (25 ms windows, 10 ms hop, power, Slaney) are
computed with numpy (checked once against librosa 1.0.0's melspectrogram, which Resemblyzer calls: within
1e-7 of its peak on examples/dialogue.ogg), and its three-layer LSTM runs as matrix products. A test holds
the LSTM to PyTorch's own run of the same weights.
"""

from __future__ import annotations

import importlib.util
import pickle
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from whisperq.core.errors import ConfigError

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 400  # 25 ms
HOP_SAMPLES = 160  # 10 ms
MEL_BANDS = 40
PARTIAL_FRAMES = 160  # what the encoder was trained on: 1.6 s
HIDDEN = 256
LAYERS = 3
_STORAGE_BYTES = {"FloatStorage": 4, "DoubleStorage": 8, "HalfStorage": 2, "LongStorage": 8, "IntStorage": 4,
                  "ShortStorage": 2, "CharStorage": 1, "ByteStorage": 1, "BoolStorage": 1}
_STORAGE_DTYPES = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
                   "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
                   "CharStorage": np.int8, "ByteStorage": np.uint8, "BoolStorage": np.bool_}


def checkpoint_path() -> Path:
    """Where the installed Resemblyzer wheel keeps its weights (found without importing the package)."""
    spec = importlib.util.find_spec("resemblyzer")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("the speaker encoder's weights are not installed: pip install --no-deps "
                          "resemblyzer==0.1.4 (make venv and the image's Dockerfile do)")
    path = Path(next(iter(spec.submodule_search_locations))) / "pretrained.pt"
    if not path.is_file():
        raise ConfigError(f"the speaker encoder's weights are missing: {path}")
    return path


@dataclass
class _Storage:
    kind: str
    numel: int
    data: np.ndarray | None = None


@dataclass
class _LazyTensor:
    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def array(self) -> np.ndarray:
        base = self.storage.data
        if base is None:
            raise pickle.UnpicklingError("a tensor's storage is missing from the checkpoint")
        last = self.offset + sum((size - 1) * stride for size, stride in zip(self.size, self.stride, strict=True))
        if self.offset < 0 or min(self.stride, default=0) < 0 or (all(self.size) and last >= len(base)):
            raise pickle.UnpicklingError("a tensor reaches past its storage")
        itemsize = base.itemsize
        return np.lib.stride_tricks.as_strided(
            base[self.offset:], shape=self.size, strides=tuple(s * itemsize for s in self.stride)).copy()


def _rebuild_tensor(storage: _Storage, offset: int, size: tuple[int, ...], stride: tuple[int, ...],
                    *_: Any) -> _LazyTensor:
    return _LazyTensor(storage, offset, tuple(size), tuple(stride))


class _CheckpointUnpickler(pickle.Unpickler):
    """Builds plain data, tensors (as lazy views of their storages) and nothing else: any other global the
    file names is refused, so a checkpoint cannot run code."""

    def __init__(self, file: IO[bytes]) -> None:
        super().__init__(file)
        self.storages: dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("collections", "OrderedDict"):
            from collections import OrderedDict

            return OrderedDict
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_BYTES:
            return name
        raise pickle.UnpicklingError(f"the checkpoint names {module}.{name}, which a GE2E checkpoint does not")

    def persistent_load(self, saved_id: Any) -> _Storage:
        kind, key, _location, numel = saved_id[1], str(saved_id[2]), saved_id[3], int(saved_id[4])
        if saved_id[0] != "storage" or kind not in _STORAGE_BYTES:
            raise pickle.UnpicklingError(f"unexpected persistent object {saved_id[:2]!r}")
        return self.storages.setdefault(key, _Storage(kind, numel))


def load_weights(path: Path) -> dict[str, np.ndarray]:
    """The `model_state` of a legacy-format PyTorch checkpoint, as float32 arrays."""
    with path.open("rb") as file:
        for _ in range(3):  # magic number, protocol version, system info: plain data
            _CheckpointUnpickler(file).load()
        unpickler = _CheckpointUnpickler(file)
        checkpoint = unpickler.load()
        keys = _CheckpointUnpickler(file).load()  # the storages' keys, in the order their bytes follow
        for key in keys:
            storage = unpickler.storages.get(str(key))
            head = file.read(8)
            if storage is None or len(head) != 8:
                raise pickle.UnpicklingError(f"the checkpoint's storage {key!r} is missing or cut short")
            (numel,) = struct.unpack("<q", head)
            raw = file.read(numel * _STORAGE_BYTES[storage.kind])
            if numel != storage.numel or len(raw) != numel * _STORAGE_BYTES[storage.kind]:
                raise pickle.UnpicklingError(f"the checkpoint's storage {key!r} is cut short")
            storage.data = np.frombuffer(raw, dtype=_STORAGE_DTYPES[storage.kind])
    return {name: tensor.array().astype(np.float32) for name, tensor in checkpoint["model_state"].items()
            if isinstance(tensor, _LazyTensor)}


def _mel_filters() -> np.ndarray:
    from faster_whisper.feature_extractor import FeatureExtractor  # librosa's Slaney filters, up to 8 kHz

    return np.asarray(FeatureExtractor.get_mel_filters(SAMPLE_RATE, WINDOW_SAMPLES, MEL_BANDS), dtype=np.float32)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


class VoiceEncoder:
    """Turns 16 kHz speech into 256-dimensional speaker embeddings (L2-normed, non-negative)."""

    def __init__(self, path: Path | None = None) -> None:
        self.weights = load_weights(path or checkpoint_path())
        self.filters = _mel_filters()
        n = np.arange(WINDOW_SAMPLES)
        self.window = (0.5 - 0.5 * np.cos(2 * np.pi * n / WINDOW_SAMPLES)).astype(np.float32)  # periodic Hann

    def mel(self, audio: np.ndarray) -> np.ndarray:
        """Frames x 40 power mel spectrogram, as the encoder was trained on (librosa, centred frames)."""
        pad = WINDOW_SAMPLES // 2
        padded = np.pad(audio.astype(np.float32), pad, mode="reflect" if len(audio) > pad else "constant")
        count = 1 + (len(padded) - WINDOW_SAMPLES) // HOP_SAMPLES
        frames = np.lib.stride_tricks.as_strided(
            padded, shape=(count, WINDOW_SAMPLES), strides=(padded.strides[0] * HOP_SAMPLES, padded.strides[0]))
        power = np.abs(np.fft.rfft(frames * self.window, axis=1)) ** 2
        return (power.astype(np.float32) @ self.filters.T).astype(np.float32)

    def embed_frames(self, mels: np.ndarray) -> np.ndarray:
        """Embeddings of a batch of mel windows (batch x frames x 40)."""
        w = self.weights
        x = mels.astype(np.float32)
        batch = x.shape[0]
        for layer in range(LAYERS):
            w_ih, w_hh = w[f"lstm.weight_ih_l{layer}"], w[f"lstm.weight_hh_l{layer}"]
            bias = w[f"lstm.bias_ih_l{layer}"] + w[f"lstm.bias_hh_l{layer}"]
            gates_in = x @ w_ih.T + bias  # all steps at once: batch x frames x 4*hidden
            h = np.zeros((batch, HIDDEN), np.float32)
            c = np.zeros((batch, HIDDEN), np.float32)
            outputs = np.empty((batch, x.shape[1], HIDDEN), np.float32)
            for step in range(x.shape[1]):
                gates = gates_in[:, step] + h @ w_hh.T
                i, f, g, o = np.split(gates, 4, axis=1)
                c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
                h = _sigmoid(o) * np.tanh(c)
                outputs[:, step] = h
            x = outputs
        raw = np.maximum(h @ w["linear.weight"].T + w["linear.bias"], 0.0)
        norms = np.linalg.norm(raw, axis=1, keepdims=True)
        return (raw / np.maximum(norms, 1e-9)).astype(np.float32)
