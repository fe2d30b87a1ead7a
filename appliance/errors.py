"""Exception types. Every message says what went wrong and, where it can, what to do about it.

The native module raises the ``Image*`` errors defined here (pyca/cryptography style: exceptions
are Python classes, the Rust side only chooses which one).
"""

from __future__ import annotations


class HallError(Exception):
    """Base class for every error the appliance raises on purpose.

    ``code`` is a stable machine-readable reason (stored with quarantine entries, translated by
    the UI); the message is the human-readable explanation for staff and technicians.
    """

    code: str = "error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        if code is not None:
            self.code = code


# --- configuration and data directory -------------------------------------------------------
class ConfigError(HallError):
    """The settings file or an environment override is invalid."""

    code = "config"


class DataDirError(HallError):
    """The data directory is missing, not initialised, or not writable."""

    code = "data_dir"


# --- intake: files in the drop folder -------------------------------------------------------
class IntakeRejected(HallError):
    """A drop-folder entry that must not be taken as a scan (symlink, FIFO, device, hard link to
    elsewhere, path outside the drop folder). The entry is moved to quarantine when possible."""

    code = "rejected_entry"


# --- decoding untrusted files ---------------------------------------------------------------
class DecodeError(HallError):
    """A file could not be turned into page images. The message is the quarantine reason shown
    to staff, so it must be readable by a non-engineer and never contain file contents."""

    code = "decode_failed"


class UnsupportedFormat(DecodeError):
    """The bytes are not JPEG, PNG, TIFF or PDF (judged by magic bytes, not by the name)."""

    code = "unsupported_format"


class CorruptFile(DecodeError):
    """The file claims a supported format but is truncated or malformed."""

    code = "corrupt_file"


class LimitExceeded(DecodeError):
    """The file exceeds a configured limit (bytes, pixels, pages, memory, CPU time)."""

    code = "limit_exceeded"


class EncryptedDocument(DecodeError):
    """A password-protected PDF: the box cannot open it without the password."""

    code = "encrypted_document"


class DecoderCrashed(DecodeError):
    """The sandboxed decoder process died (signal or resource limit) or timed out."""

    code = "decoder_crashed"


# --- native image kernels (raised from Rust) ------------------------------------------------
class ImageKernelError(HallError, ValueError):
    """An image handed to a native kernel is not usable."""

    code = "image_invalid"


class ImageDtypeError(ImageKernelError):
    """Wrong dtype: kernels take uint8 arrays."""

    code = "image_dtype"


class ImageShapeError(ImageKernelError):
    """Wrong shape: kernels take H x W (grey) or H x W x 3 (BGR) arrays."""

    code = "image_shape"


class EmptyImageError(ImageKernelError):
    """An image with zero rows or columns."""

    code = "image_empty"


# --- OCR ------------------------------------------------------------------------------------
class OcrError(HallError):
    """The OCR engine failed on a page."""

    code = "ocr_failed"


class OcrModelMissing(OcrError):
    """A configured OCR model file is not installed."""

    code = "ocr_model_missing"


# --- storage --------------------------------------------------------------------------------
class StoreError(HallError):
    """The catalog or blob store failed."""

    code = "store_failed"


class RecordNotFound(StoreError):
    """No record with that id."""

    code = "record_not_found"


class BlobCorrupted(StoreError):
    """A blob's content does not match its content address."""

    code = "blob_corrupted"


# --- keys and encryption at rest --------------------------------------------------------------
class KeyProblem(HallError):
    """A key file is missing, has unsafe permissions, or holds something that is not a key.
    The message always names the file and what to do."""

    code = "key_problem"


class KeyMissing(KeyProblem):
    code = "key_missing"


class KeyPermissions(KeyProblem):
    code = "key_permissions"


class KeyInvalid(KeyProblem):
    code = "key_invalid"


class DecryptionFailed(StoreError):
    """Authenticated decryption failed: the ciphertext was altered, moved from another row or
    record, or the key does not match. Never carries any plaintext."""

    code = "decryption_failed"


class RecordShredded(StoreError):
    """The record's data key was destroyed (crypto-shredding): its content is gone for good."""

    code = "record_shredded"
