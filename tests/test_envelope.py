"""Envelope encryption (appliance.envelope): AES-256-GCM field sealing bound to its AAD, DEK
wrapping under the hall key (KEK), HPKE sealing of DEKs to the central archive's X25519 key.

Every failure must be :class:`DecryptionFailed`, name what failed and never carry plaintext."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from appliance import envelope
from appliance.context import Context, local_archive_key_path
from appliance.envelope import OVERHEAD, Aad, new_key, open_sealed, seal
from appliance.errors import DecryptionFailed
from appliance.keyring import archive_key_id
from appliance.keys import load_archive_private

PLAINTEXT = "申请人：张三丰 公民身份号码 110101199003071234".encode()
SECRET_WORDS = ("张三丰", "110101199003071234")
AAD = Aad(appliance="hall-dev", owner="0" * 31 + "a", version=3, name="page/2/cleaned", key_id="f" * 32)

# Another value for each AAD component (each differs from AAD in that component only).
OTHER_COMPONENT: dict[str, Any] = {
    "appliance": "hall-other",
    "owner": "0" * 31 + "b",
    "version": 4,
    "name": "page/2/thumbnail",
    "key_id": "e" * 32,
}


def assert_no_plaintext(exc: BaseException, secrets: tuple[str, ...] = SECRET_WORDS) -> None:
    """Neither the message nor anything chained to the exception carries plaintext."""
    seen: BaseException | None = exc
    while seen is not None:
        for text in (str(seen), repr(seen), repr(seen.args)):
            for secret in secrets:
                assert secret not in text, f"plaintext {secret!r} leaked into {text!r}"
        seen = seen.__cause__ or seen.__context__


def flip(data: bytes, pos: int) -> bytes:
    return data[:pos] + bytes([data[pos] ^ 0x01]) + data[pos + 1 :]


# --- field sealing ---------------------------------------------------------------------------
def test_seal_then_open_returns_the_plaintext() -> None:
    key = new_key()
    sealed = seal(key, PLAINTEXT, AAD)
    assert open_sealed(key, sealed, AAD) == PLAINTEXT
    assert len(sealed) == len(PLAINTEXT) + OVERHEAD
    assert PLAINTEXT not in sealed and "张三丰".encode() not in sealed


def test_empty_plaintext_round_trips() -> None:
    key = new_key()
    assert open_sealed(key, seal(key, b"", AAD), AAD) == b""


@pytest.mark.parametrize("component", sorted(OTHER_COMPONENT))
def test_changing_any_single_aad_component_fails_naming_the_field(component: str) -> None:
    key = new_key()
    sealed = seal(key, PLAINTEXT, AAD)
    other = dataclasses.replace(AAD, **{component: OTHER_COMPONENT[component]})
    assert other != AAD
    with pytest.raises(DecryptionFailed) as info:
        open_sealed(key, sealed, other)
    message = str(info.value)
    assert other.describe() in message, "the message names the field that failed (as asked for)"
    assert "failed authentication" in message
    assert info.value.code == "decryption_failed"
    assert_no_plaintext(info.value)


def test_another_key_fails() -> None:
    sealed = seal(new_key(), PLAINTEXT, AAD)
    with pytest.raises(DecryptionFailed) as info:
        open_sealed(new_key(), sealed, AAD)
    assert AAD.describe() in str(info.value)
    assert_no_plaintext(info.value)


def test_a_flipped_byte_anywhere_fails() -> None:
    """Header, nonce, ciphertext body and tag: every single-byte change is caught."""
    key = new_key()
    sealed = seal(key, PLAINTEXT, AAD)
    for pos in range(len(sealed)):
        with pytest.raises(DecryptionFailed) as info:
            open_sealed(key, flip(sealed, pos), AAD)
        assert AAD.describe() in str(info.value), pos
        assert_no_plaintext(info.value)


@pytest.mark.parametrize("cut", [0, 1, 3, 14, OVERHEAD - 1, OVERHEAD, -16, -1])
def test_truncated_ciphertext_fails(cut: int) -> None:
    key = new_key()
    sealed = seal(key, PLAINTEXT, AAD)
    with pytest.raises(DecryptionFailed) as info:
        open_sealed(key, sealed[:cut], AAD)
    assert AAD.describe() in str(info.value)
    assert_no_plaintext(info.value)


@pytest.mark.parametrize(
    "make_foreign",
    [
        pytest.param(lambda s: b"HB" + s[2:], id="other-magic"),
        pytest.param(lambda s: s[:2] + bytes([envelope.FORMAT_VERSION + 1]) + s[3:], id="future-version"),
        pytest.param(lambda s: s[3:], id="header-stripped"),
        pytest.param(lambda s: b"\x89PNG\r\n\x1a\n" + bytes(64), id="plain-png"),
        pytest.param(lambda s: PLAINTEXT, id="plaintext"),
    ],
)
def test_foreign_data_fails_as_not_ciphertext(make_foreign: Callable[[bytes], bytes]) -> None:
    key = new_key()
    sealed = seal(key, PLAINTEXT, AAD)
    foreign = make_foreign(sealed)
    with pytest.raises(DecryptionFailed) as info:
        open_sealed(key, foreign, AAD)
    assert AAD.describe() in str(info.value)
    assert_no_plaintext(info.value)


def test_two_seals_of_the_same_plaintext_differ() -> None:
    key = new_key()
    a, b = seal(key, PLAINTEXT, AAD), seal(key, PLAINTEXT, AAD)
    assert a != b
    header = len(b"HA") + 1
    assert a[header : header + 12] != b[header : header + 12], "a fresh random nonce per seal"
    assert open_sealed(key, a, AAD) == open_sealed(key, b, AAD) == PLAINTEXT


_aad_text = st.text(max_size=40)
_aads = st.builds(
    Aad, appliance=_aad_text, owner=_aad_text, version=st.integers(0, 2**40), name=_aad_text, key_id=_aad_text
)


@settings(max_examples=150, deadline=None)
@given(plaintext=st.binary(max_size=2048), aad=st.deferred(lambda: _nul_free_aads))
def test_property_open_of_seal_is_identity(plaintext: bytes, aad: Aad) -> None:
    key = new_key()
    assert open_sealed(key, seal(key, plaintext, aad), aad) == plaintext


# Identifiers never contain NUL (hall_id is validated, owners and key ids are hex uuids, names are
# fixed strings), so the NUL-joined AAD encoding is injective over the values that occur.
_nul_free = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
_nul_free_aads = st.builds(
    Aad, appliance=_nul_free, owner=_nul_free, version=st.integers(0, 1000), name=_nul_free, key_id=_nul_free
)


def test_nul_inside_an_aad_part_is_refused() -> None:
    key = new_key()
    with pytest.raises(ValueError, match="NUL"):
        seal(key, b"x", Aad("hall\x00x", "r", 1, "metadata", "k"))


@settings(max_examples=150, deadline=None)
@given(plaintext=st.binary(max_size=256), aad=_nul_free_aads, other=_nul_free_aads)
def test_property_a_different_aad_never_opens(plaintext: bytes, aad: Aad, other: Aad) -> None:
    key = new_key()
    sealed = seal(key, plaintext, aad)
    if other == aad:
        assert open_sealed(key, sealed, other) == plaintext
    else:
        with pytest.raises(DecryptionFailed):
            open_sealed(key, sealed, other)


# --- DEK wrapping under the hall key -----------------------------------------------------------
KEK_ID = "kek-20240601-0a1b2c3d"
DEK_ID = "1" * 32


def _wrapped() -> tuple[bytes, bytes, bytes]:
    kek, dek = new_key(), new_key()
    return kek, dek, envelope.wrap_key(kek, KEK_ID, dek, appliance="hall-dev", dek_id=DEK_ID)


def test_wrap_then_unwrap_with_the_right_hall_key() -> None:
    kek, dek, wrapped = _wrapped()
    assert envelope.unwrap_key(kek, KEK_ID, wrapped, appliance="hall-dev", dek_id=DEK_ID) == dek
    assert dek not in wrapped


def _assert_does_not_belong(info: pytest.ExceptionInfo[DecryptionFailed], dek: bytes, kek_id: str) -> None:
    message = str(info.value)
    assert "does not belong" in message and kek_id in message
    assert dek.hex() not in message and repr(dek) not in message


@pytest.mark.parametrize(
    ("kek_kind", "kek_id", "appliance", "dek_id"),
    [
        ("other", KEK_ID, "hall-dev", DEK_ID),
        ("same", KEK_ID, "hall-dev", "2" * 32),
        ("same", KEK_ID, "hall-other", DEK_ID),
        ("same", "kek-20240601-ffffffff", "hall-dev", DEK_ID),
    ],
    ids=["other-kek", "other-dek-id", "other-appliance", "other-kek-id"],
)
def test_unwrap_with_anything_else_fails_saying_the_key_file_does_not_belong(
    kek_kind: str, kek_id: str, appliance: str, dek_id: str
) -> None:
    kek, dek, wrapped = _wrapped()
    use = new_key() if kek_kind == "other" else kek
    with pytest.raises(DecryptionFailed) as info:
        envelope.unwrap_key(use, kek_id, wrapped, appliance=appliance, dek_id=dek_id)
    _assert_does_not_belong(info, dek, kek_id)


def test_unwrap_of_a_damaged_wrapped_key_fails() -> None:
    kek, dek, wrapped = _wrapped()
    for pos in range(len(wrapped)):
        with pytest.raises(DecryptionFailed) as info:
            envelope.unwrap_key(kek, KEK_ID, flip(wrapped, pos), appliance="hall-dev", dek_id=DEK_ID)
        _assert_does_not_belong(info, dek, KEK_ID)


@pytest.mark.parametrize("cut", [0, 2, 3, 4, 10, 14, 15, 30, -1])
def test_unwrap_of_a_truncated_wrapped_key_fails_with_decryption_failed(cut: int) -> None:
    """A truncated ``deks.wrapped`` value (damaged catalog) must be a DecryptionFailed like any
    other damage — not a bare ValueError from the AES-GCM nonce check, which the CLI would show as
    a traceback."""
    kek, dek, wrapped = _wrapped()
    with pytest.raises(DecryptionFailed) as info:
        envelope.unwrap_key(kek, KEK_ID, wrapped[:cut], appliance="hall-dev", dek_id=DEK_ID)
    _assert_does_not_belong(info, dek, KEK_ID)


# --- HPKE sealing to the central archive ------------------------------------------------------------
def test_seal_to_archive_opens_with_the_archive_private_key() -> None:
    archive = X25519PrivateKey.generate()
    dek = new_key()
    sealed = envelope.seal_to_archive(archive.public_key(), dek, appliance="hall-dev", dek_id=DEK_ID)
    assert dek not in sealed
    assert envelope.open_from_archive(archive, sealed, appliance="hall-dev", dek_id=DEK_ID) == dek
    again = envelope.seal_to_archive(archive.public_key(), dek, appliance="hall-dev", dek_id=DEK_ID)
    assert again != sealed, "a fresh ephemeral key per seal"


@pytest.mark.parametrize(
    ("private", "appliance", "dek_id"),
    [("other", "hall-dev", DEK_ID), ("same", "hall-dev", "2" * 32), ("same", "hall-other", DEK_ID)],
    ids=["other-archive-key", "other-dek-id", "other-appliance"],
)
def test_open_from_archive_with_anything_else_fails(private: str, appliance: str, dek_id: str) -> None:
    archive = X25519PrivateKey.generate()
    dek = new_key()
    sealed = envelope.seal_to_archive(archive.public_key(), dek, appliance="hall-dev", dek_id=DEK_ID)
    key = X25519PrivateKey.generate() if private == "other" else archive
    with pytest.raises(DecryptionFailed) as info:
        envelope.open_from_archive(key, sealed, appliance=appliance, dek_id=dek_id)
    assert dek_id in str(info.value) and appliance in str(info.value)
    assert dek.hex() not in str(info.value)


@pytest.mark.parametrize("damage", ["flip-first", "flip-last", "truncate", "empty"])
def test_open_from_archive_of_damaged_data_fails(damage: str) -> None:
    archive = X25519PrivateKey.generate()
    sealed = envelope.seal_to_archive(archive.public_key(), new_key(), appliance="hall-dev", dek_id=DEK_ID)
    bad = {
        "flip-first": flip(sealed, 0),
        "flip-last": flip(sealed, len(sealed) - 1),
        "truncate": sealed[:-1],
        "empty": b"",
    }[damage]
    with pytest.raises(DecryptionFailed):
        envelope.open_from_archive(archive, bad, appliance="hall-dev", dek_id=DEK_ID)


# --- the same primitives as the keyring uses them ----------------------------------------------
def test_catalog_deks_open_both_ways_to_the_same_key(ctx: Context) -> None:
    """Each DEK row: wrapped under the current hall key *and* sealed to the pinned archive key
    (the local archive pair on embedded defaults); both give the DEK the keyring uses."""
    settings = ctx.settings
    row = ctx.conn.execute("SELECT * FROM deks WHERE id='audit'").fetchone()
    assert row is not None
    kek_id = ctx.keyring.current_kek_id(ctx.conn)
    assert row["kek_id"] == kek_id
    dek = ctx.keyring.dek(ctx.conn, "audit")
    keys = ctx.keyring.keys
    unwrapped = envelope.unwrap_key(
        keys.kek(kek_id), kek_id, bytes(row["wrapped"]), appliance=settings.hall_id, dek_id="audit"
    )
    archive = load_archive_private(local_archive_key_path(settings))
    from_archive = envelope.open_from_archive(
        archive, bytes(row["sealed"]), appliance=settings.hall_id, dek_id="audit"
    )
    assert dek == unwrapped == from_archive
    assert row["archive_key_id"] == archive_key_id(keys)
