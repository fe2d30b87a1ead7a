"""Stubs for the native page kernels (``native/src/bindings.rs``). Use ``appliance.imaging``."""

from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "__version__",
    "assess_page",
    "binarise",
    "clean_page",
    "despeckle",
    "estimate_orientation",
    "estimate_skew",
    "find_content_box",
    "find_seals",
    "phash",
    "red_channel",
    "rotate",
    "rotate_quarter",
    "thumbnail",
    "to_grey",
]

__version__: str

_Box = tuple[int, int, int, int]

def to_grey(image: NDArray[np.uint8]) -> NDArray[np.uint8]: ...
def red_channel(image: NDArray[np.uint8]) -> NDArray[np.uint8]: ...
def estimate_skew(image: NDArray[np.uint8], max_deg: float) -> tuple[float, float]: ...
def rotate(image: NDArray[np.uint8], angle_deg: float, threads: int) -> NDArray[np.uint8]: ...
def rotate_quarter(image: NDArray[np.uint8], turns: int) -> NDArray[np.uint8]: ...
def find_content_box(
    image: NDArray[np.uint8], source_size: tuple[int, int] | None, angle_deg: float
) -> _Box: ...
def thumbnail(image: NDArray[np.uint8], max_side: int) -> NDArray[np.uint8]: ...
def binarise(image: NDArray[np.uint8], window: int, k: float, threads: int) -> NDArray[np.uint8]: ...
def despeckle(image: NDArray[np.uint8], max_area: int, keep_radius: int) -> NDArray[np.uint8]: ...
def estimate_orientation(image: NDArray[np.uint8], threads: int) -> tuple[int, float]: ...
def find_seals(image: NDArray[np.uint8], dpi: float | None = None) -> list[_Box]: ...
def phash(image: NDArray[np.uint8]) -> int: ...
def assess_page(image: NDArray[np.uint8], dpi: float | None = None) -> tuple[bool, dict[str, float]]: ...
def clean_page(
    image: NDArray[np.uint8],
    thumbnail_max_side: int,
    max_skew_deg: float,
    threads: int,
    dpi: float | None = None,
    sauvola_window: int | None = None,
    sauvola_k: float = 0.2,
    speck_max_area: int | None = None,
    speck_keep_radius: int | None = None,
    orientation: bool = True,
    seal_halftone: bool = True,
) -> tuple[
    NDArray[np.uint8],
    NDArray[np.uint8] | None,
    NDArray[np.uint8],
    NDArray[np.uint8],
    dict[str, Any],
]: ...
