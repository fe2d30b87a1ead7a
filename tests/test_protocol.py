"""The transfer protocol's signed bytes (``sync/protocol.py``): what verifies, what is refused."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sync import protocol
from sync.protocol import ProtocolError, SignatureInvalid, StaleRequest

DEVICE = Ed25519PrivateKey.generate()
OTHER = Ed25519PrivateKey.generate()
MANIFEST = {
    "format": protocol.MANIFEST_FORMAT,
    "hall_id": "h1",
    "record_id": "r1",
    "record_version": 2,
    "档号": "x",
}


def test_canonical_json_is_sorted_compact_utf8_and_refuses_floats() -> None:
    assert protocol.canonical_json({"b": 1, "a": ["档", None]}) == '{"a":["档",null],"b":1}'.encode()
    with pytest.raises(ProtocolError, match=r"\$\.a\[1\] is a float"):
        protocol.canonical_json({"a": [1, 0.5]})
    with pytest.raises(ProtocolError, match="non-string key"):
        protocol.canonical_json({1: 2})


def test_package_signature_verifies_and_any_change_breaks_it() -> None:
    package = json.loads(protocol.canonical_json(protocol.sign_package(DEVICE, MANIFEST)))
    protocol.verify_package(DEVICE.public_key(), package)
    altered = {**package, "manifest": {**package["manifest"], "record_version": 3}}
    with pytest.raises(SignatureInvalid, match="manifest was altered"):
        protocol.verify_package(DEVICE.public_key(), altered)
    with pytest.raises(SignatureInvalid, match="not the enrolled device key"):
        protocol.verify_package(OTHER.public_key(), package)
    with pytest.raises(ProtocolError, match="not valid base64"):
        protocol.verify_package(DEVICE.public_key(), {**package, "signature": "%%%"})


def test_idempotency_key_depends_on_record_version_and_payload_only() -> None:
    key = protocol.idempotency_key("h1", "r1", 2, MANIFEST)
    assert key == protocol.idempotency_key("h1", "r1", 2, dict(reversed(list(MANIFEST.items()))))
    assert key != protocol.idempotency_key("h1", "r1", 3, MANIFEST)
    assert key != protocol.idempotency_key("h2", "r1", 2, MANIFEST)
    assert key != protocol.idempotency_key("h1", "r1", 2, {**MANIFEST, "档号": "y"})


def test_request_signature_binds_method_path_body_and_time() -> None:
    body = b'{"x":1}'
    headers = protocol.sign_request(DEVICE, "POST", "/api/v1/packages", body, now=1_000_000)
    signed = protocol.verify_request(
        DEVICE.public_key(), headers, "POST", "/api/v1/packages", body, now=1_000_100
    )
    assert signed.timestamp == 1_000_000 and signed.nonce == headers[protocol.H_NONCE]
    with pytest.raises(SignatureInvalid, match="Content-Digest"):
        protocol.verify_request(
            DEVICE.public_key(), headers, "POST", "/api/v1/packages", b'{"x":2}', now=1_000_000
        )
    with pytest.raises(SignatureInvalid, match="does not verify"):
        protocol.verify_request(DEVICE.public_key(), headers, "POST", "/api/v1/enroll", body, now=1_000_000)
    with pytest.raises(SignatureInvalid, match="does not verify"):
        later = {**headers, protocol.H_TIMESTAMP: "1000001"}
        protocol.verify_request(DEVICE.public_key(), later, "POST", "/api/v1/packages", body, now=1_000_000)
    with pytest.raises(StaleRequest, match=r"\+301 s off"):
        protocol.verify_request(DEVICE.public_key(), headers, "POST", "/api/v1/packages", body, now=1_000_301)
    with pytest.raises(SignatureInvalid, match="does not match the enrolled"):
        protocol.verify_request(OTHER.public_key(), headers, "POST", "/api/v1/packages", body, now=1_000_000)


def test_every_request_gets_a_fresh_nonce() -> None:
    nonces = {protocol.sign_request(DEVICE, "GET", "/p", b"")[protocol.H_NONCE] for _ in range(50)}
    assert len(nonces) == 50


def test_receipt_verifies_only_with_the_archive_key_and_unchanged() -> None:
    archive = Ed25519PrivateKey.generate()
    receipt = protocol.sign_receipt(archive, {"status": "accepted", "record_id": "r1", "record_version": 2})
    body = protocol.verify_receipt(archive.public_key(), json.loads(json.dumps(receipt)))
    assert body["record_id"] == "r1" and "signature" not in body
    with pytest.raises(SignatureInvalid, match="signature does not verify"):
        protocol.verify_receipt(archive.public_key(), {**receipt, "status": "rejected"})
    with pytest.raises(SignatureInvalid, match="not the pinned archive key"):
        protocol.verify_receipt(DEVICE.public_key(), receipt)
