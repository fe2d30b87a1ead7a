"""Stubs for the native page kernels (``native/src/bindings.rs``). Use ``appliance.imaging``."""

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "__version__",
    "clean_page",
    "estimate_skew",
    "find_content_box",
    "red_channel",
    "rotate",
    "rotate_quarter",
    "thumbnail",
    "to_grey",
]

__version__: str

def to_grey(image: NDArray[np.uint8]) -> NDArray[np.uint8]: ...
def red_channel(image: NDArray[np.uint8]) -> NDArray[np.uint8]: ...
def estimate_skew(image: NDArray[np.uint8], max_deg: float) -> tuple[float, float]: ...
def rotate(image: NDArray[np.uint8], angle_deg: float, threads: int) -> NDArray[np.uint8]: ...
def rotate_quarter(image: NDArray[np.uint8], turns: int) -> NDArray[np.uint8]: ...
def find_content_box(
    image: NDArray[np.uint8], source_size: tuple[int, int] | None, angle_deg: float
) -> tuple[int, int, int, int]: ...
def thumbnail(image: NDArray[np.uint8], max_side: int) -> NDArray[np.uint8]: ...
def clean_page(
    image: NDArray[np.uint8], thumbnail_max_side: int, max_skew_deg: float, threads: int
) -> tuple[
    NDArray[np.uint8],
    NDArray[np.uint8] | None,
    NDArray[np.uint8],
    float,
    float,
    tuple[int, int, int, int],
    float,
]: ...
