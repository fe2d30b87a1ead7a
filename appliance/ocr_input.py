"""The grey page the OCR reads. Grey pages are read as they are. Colour pages are read as luma
grey, except pixels of seal-red ink, which take their red-channel value: on the red channel a red
seal is nearly white, so a seal stamped over text disappears while black, blue or green text
stays dark. (The red channel alone also lifts seals, but loses coloured text: on the corpus
banner it found 7 of 14 expected strings, luma grey 14 of 14.)"""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

RED_MARGIN = 40  # red must exceed both green and blue by this much to count as seal ink


def ocr_grey(image: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint8]:
    if image.ndim == 2:
        return image
    grey = np.asarray(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), dtype=np.uint8)
    blue, green, red = cv2.split(image)
    seal = cv2.subtract(red, cv2.max(green, blue)) > RED_MARGIN
    np.copyto(grey, red, where=seal)
    return grey
