"""Content-addressed blob store on the local disk: ``blobs/ab/cd/<sha256>``.

Blobs are immutable; writing one that exists is a no-op, so every put is idempotent and safe to
repeat after a crash. Reads verify the content address.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Protocol

from appliance.errors import BlobCorrupted, StoreError
from appliance.fsutil import atomic_write


class BlobStore(Protocol):
    def put(self, data: bytes) -> str: ...
    def get(self, ref: str) -> bytes: ...
    def exists(self, ref: str) -> bool: ...


class FileBlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, ref: str) -> Path:
        if len(ref) != 64 or any(c not in "0123456789abcdef" for c in ref):
            raise StoreError(f"invalid blob reference {ref!r}")
        return self.root / ref[:2] / ref[2:4] / ref

    def put(self, data: bytes) -> str:
        ref = hashlib.sha256(data).hexdigest()
        path = self._path(ref)
        if path.exists():
            return ref
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data, mode=0o400)
        return ref

    def get(self, ref: str) -> bytes:
        path = self._path(ref)
        try:
            data = path.read_bytes()
        except FileNotFoundError as e:
            raise StoreError(f"blob {ref} is missing from {self.root}; restore it from the replica") from e
        if hashlib.sha256(data).hexdigest() != ref:
            raise BlobCorrupted(f"blob {ref} in {self.root} is corrupted (content does not match its hash)")
        return data

    def exists(self, ref: str) -> bool:
        return self._path(ref).exists()

    def size(self, ref: str) -> int:
        try:
            return self._path(ref).stat().st_size
        except FileNotFoundError as e:
            raise StoreError(f"blob {ref} is missing from {self.root}; restore it from the replica") from e
