"""The speaker encoder's checkpoint reader refuses anything but plain data and tensors that fit their storage."""

from __future__ import annotations

import pickle

import pytest

from whisperq.transcriber.diarizers.voice_encoder import load_weights


def checkpoint(tmp_path, body: bytes, tail: bytes = b""):
    path = tmp_path / "pretrained.pt"
    path.write_bytes(b"".join(pickle.dumps(x, protocol=2) for x in (119547037146038801333356, 1001, {})) + body + tail)
    return path


def test_checkpoint_when_it_names_another_global_then_refused_before_anything_runs(tmp_path):
    with pytest.raises(pickle.UnpicklingError, match=r"\.print, which"):
        load_weights(checkpoint(tmp_path, pickle.dumps({"model_state": print}, protocol=2)))


def test_checkpoint_when_its_header_names_a_global_then_refused(tmp_path):
    path = tmp_path / "pretrained.pt"
    path.write_bytes(pickle.dumps(print, protocol=2))
    with pytest.raises(pickle.UnpicklingError, match=r"\.print, which"):
        load_weights(path)


def test_checkpoint_when_a_storage_is_cut_short_then_refused(tmp_path):
    import struct

    # A pickle of {"model_state": {"w": tensor}} whose storage is announced as 4 floats and holds 1.
    class Storage:  # pickled as torch's persistent id ('storage', FloatStorage, key, location, numel, None)
        pass

    class Writer(pickle.Pickler):
        def persistent_id(self, obj):
            return ("storage", FloatStorage, "0", "cpu", 4, None) if isinstance(obj, Storage) else None

    import io
    import sys
    import types

    torch_stub = types.ModuleType("torch")
    utils_stub = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):  # only its name is pickled
        raise AssertionError

    FloatStorage = type("FloatStorage", (), {"__module__": "torch"})
    torch_stub.FloatStorage = FloatStorage
    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    utils_stub._rebuild_tensor_v2 = _rebuild_tensor_v2

    class Tensor:
        def __reduce__(self):
            return (_rebuild_tensor_v2, (Storage(), 0, (4,), (1,), False, None))

    saved = {name: sys.modules.get(name) for name in ("torch", "torch._utils")}
    sys.modules.update({"torch": torch_stub, "torch._utils": utils_stub})
    try:
        buffer = io.BytesIO()
        Writer(buffer, protocol=2).dump({"model_state": {"w": Tensor()}})
    finally:
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
    body = buffer.getvalue() + pickle.dumps(["0"], protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="cut short"):
        load_weights(checkpoint(tmp_path, body, struct.pack("<q", 4) + b"\0" * 4))
    whole = load_weights(checkpoint(tmp_path, body, struct.pack("<q", 4) + b"\0" * 16))
    assert whole["w"].shape == (4,)
