"""Reading CTranslate2's model.bin (binary version 6) into numpy arrays.

Layout: u32 version, str spec name, u32 revision, u32 variable count, then per variable
{str name, u8 ndim, u32 dims[ndim], u8 dtype id, u32 nbytes, data}, then u32 alias count and
{str alias, str target} pairs. A str is a u16 length (NUL included), the UTF-8 bytes and a NUL.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np

from whisperq.core.errors import ConfigError

# CTranslate2 dtype ids; bfloat16 (5) is widened by hand since numpy has no such type.
_DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
_BFLOAT16 = 5
SUPPORTED_VERSIONS = (6,)


def _u8(handle: BinaryIO) -> int:
    return struct.unpack("<B", handle.read(1))[0]


def _u16(handle: BinaryIO) -> int:
    return struct.unpack("<H", handle.read(2))[0]


def _u32(handle: BinaryIO) -> int:
    return struct.unpack("<I", handle.read(4))[0]


def _str(handle: BinaryIO) -> str:
    length = _u16(handle)
    return handle.read(length)[:-1].decode("utf-8")


def read_model_bin(path: Path) -> tuple[str, dict[str, np.ndarray]]:
    """The spec name and every variable (aliases resolved) of a CTranslate2 model.bin."""
    with open(path, "rb") as handle:
        version = _u32(handle)
        if version not in SUPPORTED_VERSIONS:
            raise ConfigError(f"{path}: CTranslate2 model version {version} is not supported (expected 6)")
        spec = _str(handle)
        _u32(handle)  # spec revision
        variables: dict[str, np.ndarray] = {}
        for _ in range(_u32(handle)):
            name = _str(handle)
            shape = tuple(_u32(handle) for _ in range(_u8(handle)))
            dtype_id = _u8(handle)
            nbytes = _u32(handle)
            raw = handle.read(nbytes)
            if dtype_id == _BFLOAT16:
                array = (np.frombuffer(raw, dtype=np.uint16).astype(np.uint32) << 16).view(np.float32)
            elif dtype_id in _DTYPES:
                array = np.frombuffer(raw, dtype=_DTYPES[dtype_id])
            else:
                raise ConfigError(f"{path}: variable {name} has unknown dtype id {dtype_id}")
            variables[name] = array.reshape(shape)
        for _ in range(_u32(handle)):
            alias, target = _str(handle), _str(handle)
            variables[alias] = variables[target]
    return spec, variables
