"""Convert a CTranslate2 Whisper model into an openai-whisper checkpoint, once, and cache it.

openai-whisper reads {"dims": ..., "model_state_dict": ...} from a .pt file. The CTranslate2
model holds the same tensors under other names, with fused projections: self-attention linear_0
is [q; k; v], cross-attention linear_0 is q and linear_1 is [k; v]. openai-whisper's key
projections have no bias (CTranslate2's key bias is zero), and the output projection is tied to
the token embedding in both.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from whisperq.core.errors import ConfigError
from whisperq.transcriber.engines.ct2_format import read_model_bin

CONVERTER_VERSION = 2


def _weight(variables: dict[str, np.ndarray], name: str) -> np.ndarray:
    """A float32 tensor; int8 weights are divided by their per-row `<name>_scale`."""
    array = variables[name]
    if array.dtype == np.int8:
        scale = variables[f"{name}_scale"].astype(np.float32)
        return array.astype(np.float32) / scale.reshape(-1, *([1] * (array.ndim - 1)))
    return array.astype(np.float32)


def _count_layers(variables: dict[str, np.ndarray], prefix: str) -> int:
    pattern = re.compile(rf"^{prefix}/layer_(\d+)/")
    return len({match.group(1) for name in variables if (match := pattern.match(name))})


def convert_state_dict(variables: dict[str, np.ndarray], config: dict[str, Any]) -> tuple[dict, dict]:
    """openai-whisper's dims and state dict (numpy arrays) from CTranslate2 variables."""
    state: dict[str, np.ndarray] = {}
    w = lambda name: _weight(variables, name)  # noqa: E731 - a short local alias reads best here

    def norm(src: str, dst: str) -> None:
        state[f"{dst}.weight"] = w(f"{src}/gamma")
        state[f"{dst}.bias"] = w(f"{src}/beta")

    def attention(src: str, dst: str, fused: str) -> None:
        """Split fused projections into query/key/value/out; the block's layer norm becomes <dst>_ln."""
        if fused == "qkv":
            qkv_w, qkv_b = w(f"{src}/linear_0/weight"), w(f"{src}/linear_0/bias")
            q_w, k_w, v_w = np.split(qkv_w, 3)
            q_b, _k_b, v_b = np.split(qkv_b, 3)
            out = f"{src}/linear_1"
        else:  # cross-attention: q alone, then [k; v]
            q_w, q_b = w(f"{src}/linear_0/weight"), w(f"{src}/linear_0/bias")
            k_w, v_w = np.split(w(f"{src}/linear_1/weight"), 2)
            _k_b, v_b = np.split(w(f"{src}/linear_1/bias"), 2)
            out = f"{src}/linear_2"
        state.update({
            f"{dst}.query.weight": q_w, f"{dst}.query.bias": q_b, f"{dst}.key.weight": k_w,
            f"{dst}.value.weight": v_w, f"{dst}.value.bias": v_b,
            f"{dst}.out.weight": w(f"{out}/weight"), f"{dst}.out.bias": w(f"{out}/bias"),
        })
        norm(f"{src}/layer_norm", f"{dst}_ln")

    def mlp(src: str, dst: str) -> None:
        norm(f"{src}/layer_norm", f"{dst}.mlp_ln")
        for ct2_index, torch_index in ((0, 0), (1, 2)):
            state[f"{dst}.mlp.{torch_index}.weight"] = w(f"{src}/linear_{ct2_index}/weight")
            state[f"{dst}.mlp.{torch_index}.bias"] = w(f"{src}/linear_{ct2_index}/bias")

    for conv in ("conv1", "conv2"):
        state[f"encoder.{conv}.weight"] = w(f"encoder/{conv}/weight")
        state[f"encoder.{conv}.bias"] = w(f"encoder/{conv}/bias")
    state["encoder.positional_embedding"] = w("encoder/position_encodings/encodings")
    n_audio_layer = _count_layers(variables, "encoder")
    for i in range(n_audio_layer):
        src, dst = f"encoder/layer_{i}", f"encoder.blocks.{i}"
        attention(f"{src}/self_attention", f"{dst}.attn", "qkv")
        mlp(f"{src}/ffn", dst)
    norm("encoder/layer_norm", "encoder.ln_post")

    state["decoder.token_embedding.weight"] = w("decoder/embeddings/weight")
    state["decoder.positional_embedding"] = w("decoder/position_encodings/encodings")
    n_text_layer = _count_layers(variables, "decoder")
    for i in range(n_text_layer):
        src, dst = f"decoder/layer_{i}", f"decoder.blocks.{i}"
        attention(f"{src}/self_attention", f"{dst}.attn", "qkv")
        attention(f"{src}/attention", f"{dst}.cross_attn", "kv")
        mlp(f"{src}/ffn", dst)
    norm("decoder/layer_norm", "decoder.ln")

    dims = _dims(state, variables, n_audio_layer, n_text_layer)
    extra = {"alignment_heads": config.get("alignment_heads") or []}
    return dims, {"state": state, **extra}


def _dims(state: dict[str, np.ndarray], variables: dict[str, np.ndarray], n_audio_layer: int,
          n_text_layer: int) -> dict[str, int]:
    """openai-whisper's ModelDimensions, read off the converted weights' shapes."""
    n_audio_ctx, n_audio_state = state["encoder.positional_embedding"].shape
    n_text_ctx, n_text_state = state["decoder.positional_embedding"].shape
    return {
        "n_mels": int(state["encoder.conv1.weight"].shape[1]),
        "n_audio_ctx": int(n_audio_ctx),
        "n_audio_state": int(n_audio_state),
        "n_audio_head": int(variables["encoder/num_heads"]),
        "n_audio_layer": n_audio_layer,
        "n_vocab": int(state["decoder.token_embedding.weight"].shape[0]),
        "n_text_ctx": int(n_text_ctx),
        "n_text_state": int(n_text_state),
        "n_text_head": int(variables["decoder/num_heads"]),
        "n_text_layer": n_text_layer,
    }


def openai_checkpoint(ct2_dir: Path, cache_dir: Path) -> tuple[Path, list[list[int]]]:
    """The openai-whisper checkpoint for a CTranslate2 model directory, converted on first use and
    kept under `cache_dir`, and the model's alignment heads (openai-whisper does not restore them
    from a checkpoint)."""
    import torch

    model_bin = ct2_dir / "model.bin"
    config = json.loads((ct2_dir / "config.json").read_text(encoding="utf-8"))
    digest = hashlib.sha256()
    with open(model_bin, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    key = f"{digest.hexdigest()[:16]}-v{CONVERTER_VERSION}"
    target = cache_dir / "openai-whisper" / f"{key}.pt"
    heads = [list(map(int, pair)) for pair in config.get("alignment_heads") or []]
    if target.is_file():
        return target, heads
    spec, variables = read_model_bin(model_bin)
    if spec != "WhisperSpec":
        raise ConfigError(f"{model_bin} is a {spec}, not a Whisper model")
    dims, converted = convert_state_dict(variables, config)
    # Keep float16 where the source is float16 (lossless, half the size); load_state_dict casts.
    half = variables["decoder/embeddings/weight"].dtype == np.float16
    state = {
        name: torch.from_numpy(np.ascontiguousarray(array.astype(np.float16) if half else array))
        for name, array in converted["state"].items()
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(f".{os.getpid()}.tmp")
    torch.save({"dims": dims, "model_state_dict": state}, tmp)
    tmp.replace(target)  # atomic: concurrent workers converting at once never see half a file
    return target, heads
