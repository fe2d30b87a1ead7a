"""Exception types. Every message says what went wrong and, where it can, what to do about it.

The native module raises the ``Image*`` errors defined here (pyca/cryptography style: exceptions
are Python classes, the Rust side only chooses which one).
"""

from __future__ import annotations


class HallError(Exception):
    """Base class for every error the appliance raises on purpose."""


# --- configuration and data directory -------------------------------------------------------
class ConfigError(HallError):
    """The settings file or an environment override is invalid."""


class DataDirError(HallError):
    """The data directory is missing, not initialised, or not writable."""


# --- intake: files in the drop folder -------------------------------------------------------
class IntakeRejected(HallError):
    """A drop-folder entry that must not be taken as a scan (symlink, FIFO, device, hard link to
    elsewhere, path outside the drop folder). The entry is moved to quarantine when possible."""


# --- decoding untrusted files ---------------------------------------------------------------
class DecodeError(HallError):
    """A file could not be turned into page images. The message is the quarantine reason shown
    to staff, so it must be readable by a non-engineer and never contain file contents."""


class UnsupportedFormat(DecodeError):
    """The bytes are not JPEG, PNG, TIFF or PDF (judged by magic bytes, not by the name)."""


class CorruptFile(DecodeError):
    """The file claims a supported format but is truncated or malformed."""


class LimitExceeded(DecodeError):
    """The file exceeds a configured limit (bytes, pixels, pages, memory, CPU time)."""


class EncryptedDocument(DecodeError):
    """A password-protected PDF: the box cannot open it without the password."""


class DecoderCrashed(DecodeError):
    """The sandboxed decoder process died (signal or resource limit) or timed out."""


# --- native image kernels (raised from Rust) ------------------------------------------------
class ImageKernelError(HallError, ValueError):
    """An image handed to a native kernel is not usable."""


class ImageDtypeError(ImageKernelError):
    """Wrong dtype: kernels take uint8 arrays."""


class ImageShapeError(ImageKernelError):
    """Wrong shape: kernels take H x W (grey) or H x W x 3 (BGR) arrays."""


class EmptyImageError(ImageKernelError):
    """An image with zero rows or columns."""


# --- OCR ------------------------------------------------------------------------------------
class OcrError(HallError):
    """The OCR engine failed on a page."""


class OcrModelMissing(OcrError):
    """A configured OCR model file is not installed."""


# --- storage --------------------------------------------------------------------------------
class StoreError(HallError):
    """The catalog or blob store failed."""


class RecordNotFound(StoreError):
    """No record with that id."""


class BlobCorrupted(StoreError):
    """A blob's content does not match its content address."""
