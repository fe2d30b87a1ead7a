"""The archive's object store, where encrypted page blobs go: a local folder (embedded defaults,
the whole flow on one machine) or an S3-compatible bucket (SigV4 over httpx).

Keys are content addresses: :func:`blob_key` of the SHA-256 of the ciphertext, so a PUT is
idempotent and a blob already present is skipped. The store only ever holds ciphertext.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import hashlib
import hmac
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Protocol
from urllib.parse import quote

import httpx

from appliance.errors import HallError
from appliance.fsutil import atomic_write

Pace = Callable[[int], None]
_CHUNK = 64 * 1024
_REF = re.compile(r"^[0-9a-f]{64}$")
_KEY = re.compile(r"^[A-Za-z0-9._/-]{1,512}$")


class ObjectStoreError(HallError):
    """The object store refused a request (credentials, bucket, key): a configuration problem."""

    code = "object_store"


class ObjectStoreUnavailable(ObjectStoreError):
    """The object store could not be reached or answered 5xx: retry later."""

    code = "object_store_unavailable"


class ObjectNotFound(ObjectStoreError):
    code = "object_not_found"


def blob_key(hall_id: str, ref: str) -> str:
    """Where the blob with content address ``ref`` (SHA-256 hex of its ciphertext) lives."""
    if not _REF.fullmatch(ref):
        raise ObjectStoreError(f"invalid blob reference {ref!r}")
    return f"halls/{hall_id}/blobs/{ref[:2]}/{ref}"


def _check_key(key: str) -> str:
    if not _KEY.fullmatch(key) or ".." in key.split("/") or key.startswith("/"):
        raise ObjectStoreError(f"invalid object key {key!r}")
    return key


class ObjectStore(Protocol):
    def exists(self, key: str) -> bool: ...
    def put(self, key: str, data: bytes, *, pace: Pace | None = None) -> None: ...
    def get(self, key: str) -> bytes: ...
    def delete(self, key: str) -> None: ...
    def describe(self) -> str: ...


class FolderObjectStore:
    """Objects as files under ``root`` (0600, written atomically)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / _check_key(key)

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def put(self, key: str, data: bytes, *, pace: Pace | None = None) -> None:
        path = self._path(key)
        if pace is not None:
            for start in range(0, len(data), _CHUNK):
                pace(min(_CHUNK, len(data) - start))
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, data, mode=0o600)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            raise ObjectNotFound(f"object {key} is not in {self.root}") from None
        except OSError as e:
            raise ObjectStoreUnavailable(f"cannot read {key} from {self.root}: {e.strerror}") from e

    def delete(self, key: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(key))

    def describe(self) -> str:
        return f"folder {self.root}"


def _hmac(key: bytes, msg: str) -> bytes:
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


class S3ObjectStore:
    """Path-style S3 (SeaweedFS, MinIO, Ceph RGW, AWS) with AWS Signature V4, over httpx."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        access_key: str,
        secret_key: str,
        *,
        region: str = "us-east-1",
        prefix: str = "",
        timeout_s: float = 30.0,
        verify: bool | str = True,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        if not access_key or not secret_key:
            raise ObjectStoreError(
                f"no credentials for the object store {endpoint}: set the access and secret key variables"
            )
        self.endpoint = endpoint.rstrip("/")
        self.bucket = bucket
        self.region = region
        self.prefix = prefix.strip("/")
        self._access = access_key
        self._secret = secret_key
        self._client = httpx.Client(timeout=timeout_s, verify=verify, transport=transport)

    def close(self) -> None:
        self._client.close()

    def describe(self) -> str:
        return f"s3 {self.endpoint}/{self.bucket}/{self.prefix}".rstrip("/")

    def _path(self, key: str) -> str:
        full = f"{self.prefix}/{_check_key(key)}" if self.prefix else _check_key(key)
        return "/" + quote(self.bucket, safe="") + "/" + quote(full, safe="/-_.~")

    def _headers(self, method: str, path: str, payload_hash: str) -> dict[str, str]:
        now = dt.datetime.now(dt.UTC)
        amz_date, day = now.strftime("%Y%m%dT%H%M%SZ"), now.strftime("%Y%m%d")
        host = httpx.URL(self.endpoint).netloc.decode()
        headers = {"host": host, "x-amz-content-sha256": payload_hash, "x-amz-date": amz_date}
        signed = ";".join(sorted(headers))
        canonical = "\n".join(
            [method, path, "", *(f"{k}:{headers[k]}" for k in sorted(headers)), "", signed, payload_hash]
        )
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join(
            ["AWS4-HMAC-SHA256", amz_date, scope, hashlib.sha256(canonical.encode()).hexdigest()]
        )
        k = _hmac(_hmac(_hmac(_hmac(f"AWS4{self._secret}".encode(), day), self.region), "s3"), "aws4_request")
        signature = hmac.new(k, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self._access}/{scope}, "
            f"SignedHeaders={signed}, Signature={signature}"
        )
        del headers["host"]
        return headers

    def _send(self, method: str, key: str, body: bytes = b"", pace: Pace | None = None) -> httpx.Response:
        path = self._path(key)
        headers = self._headers(method, path, hashlib.sha256(body).hexdigest())
        content: bytes | Iterator[bytes] = body
        if method == "PUT":
            headers["content-length"] = str(len(body))
            # The store checks it: a PUT cut short is refused, never stored truncated (SeaweedFS
            # ignores x-amz-content-sha256 and keeps an empty object for a PUT cut after its headers).
            headers["content-md5"] = _content_md5(body)
            content = _paced(body, pace) if pace is not None else body
        try:
            response = self._client.request(method, self.endpoint + path, headers=headers, content=content)
        except httpx.HTTPError as e:
            raise ObjectStoreUnavailable(
                f"object store {self.endpoint} unreachable: {type(e).__name__}"
            ) from e
        if response.status_code >= 500:
            raise ObjectStoreUnavailable(f"object store {self.endpoint} answered {response.status_code}")
        return response

    def exists(self, key: str) -> bool:
        r = self._send("HEAD", key)
        if r.status_code == 404:
            return False
        if r.status_code == 200:
            return True
        raise ObjectStoreError(
            f"object store refused HEAD {key}: HTTP {r.status_code} (check the credentials)"
        )

    def put(self, key: str, data: bytes, *, pace: Pace | None = None) -> None:
        r = self._send("PUT", key, data, pace)
        if r.status_code not in (200, 201, 204):
            raise ObjectStoreError(f"object store refused PUT {key}: HTTP {r.status_code} {r.text[:200]}")

    def get(self, key: str) -> bytes:
        r = self._send("GET", key)
        if r.status_code == 404:
            raise ObjectNotFound(f"object {key} is not in {self.describe()}")
        if r.status_code != 200:
            raise ObjectStoreError(f"object store refused GET {key}: HTTP {r.status_code}")
        return r.content

    def delete(self, key: str) -> None:
        r = self._send("DELETE", key)
        if r.status_code not in (200, 204, 404):
            raise ObjectStoreError(f"object store refused DELETE {key}: HTTP {r.status_code}")


def _content_md5(body: bytes) -> str:
    return base64.b64encode(hashlib.md5(body, usedforsecurity=False).digest()).decode()


def _paced(body: bytes, pace: Pace) -> Iterator[bytes]:
    for start in range(0, len(body), _CHUNK):
        chunk = body[start : start + _CHUNK]
        pace(len(chunk))
        yield chunk
