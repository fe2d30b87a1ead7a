"""OCR behind one small interface. The engines are the rapidocr family on onnxruntime, with the
models bundled in their wheels (nothing is downloaded). ``load_engine`` builds one per worker
process; ``read`` takes the cleaned grey page.

Default: the rapidocr 3.x pipeline with the PP-OCRv4 detector (from the rapidocr-onnxruntime
wheel) and the PP-OCRv6 recogniser and direction classifier (from the rapidocr wheel).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from appliance.errors import OcrError, OcrModelMissing
from appliance.records import OcrLine
from appliance.settings import OcrSettings


@dataclass(frozen=True)
class OcrResult:
    lines: list[OcrLine]
    flipped_share: float  # share of text (by box width) the direction classifier found upside down
    elapsed_ms: float


class OcrEngine(Protocol):
    name: str

    def read(self, image: np.ndarray) -> OcrResult: ...


class NullEngine:
    """Reads nothing. For tests of the pipeline's plumbing and for boxes with OCR turned off."""

    name = "none"

    def read(self, image: np.ndarray) -> OcrResult:
        return OcrResult([], 0.0, 0.0)


# A white margin around the page before detection: the detector misses or splits text that
# touches the image edge (word crops, pages cropped tight to their content). Measured on the
# corpus word crops: no margin read '韩','国','馆'; 32 px read '韩国小馆'.
MARGIN = 32
FULL_RESOLUTION_CAP = 4096  # longest page side kept for line crops (a 300-dpi A4 page is 3508)


def with_margin(image: np.ndarray) -> np.ndarray:
    pad = ((MARGIN, MARGIN), (MARGIN, MARGIN)) + (((0, 0),) if image.ndim == 3 else ())
    return np.pad(image, pad, mode="constant", constant_values=255)


def _box(points: Any, width: int, height: int) -> tuple[tuple[float, float], ...]:
    """A detected box moved back from the padded image into page pixels (clipped to the page)."""
    return tuple(
        (
            round(min(max(float(x) - MARGIN, 0.0), float(width)), 1),
            round(min(max(float(y) - MARGIN, 0.0), float(height)), 1),
        )
        for x, y in points
    )


def model_paths(settings: OcrSettings) -> dict[str, Path]:
    import rapidocr
    import rapidocr_onnxruntime

    v6 = Path(rapidocr.__file__).parent / "models"
    v4 = Path(rapidocr_onnxruntime.__file__).parent / "models"
    paths = {
        "det": v4 / "ch_PP-OCRv4_det_infer.onnx"
        if settings.det_model == "PP-OCRv4"
        else v6 / "PP-OCRv6_det_small.onnx",
        "rec": v4 / "ch_PP-OCRv4_rec_infer.onnx"
        if settings.rec_model == "PP-OCRv4"
        else v6 / "PP-OCRv6_rec_small.onnx",
        "cls": v6 / "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
    }
    for role, p in paths.items():
        if not p.is_file():
            raise OcrModelMissing(
                f"OCR {role} model {p} is not installed; reinstall hall-appliance (the models ship in the "
                "rapidocr and rapidocr-onnxruntime wheels)"
            )
    return paths


class RapidOcrEngine:
    """rapidocr 3.x. Runs detection, direction classification and recognition step by step so
    that the classifier's per-line verdicts are kept (they reveal an upside-down page)."""

    def __init__(self, settings: OcrSettings) -> None:
        from rapidocr import RapidOCR
        from rapidocr.utils.typings import OCRVersion

        paths = model_paths(settings)
        version = {"PP-OCRv4": OCRVersion.PPOCRV4, "PP-OCRv6": OCRVersion.PPOCRV6}
        self.name = f"rapidocr/{settings.det_model}-det+{settings.rec_model}-rec"
        self.min_score = settings.min_score
        self._engine = RapidOCR(
            params={
                # Lines are cropped for recognition from the page at full resolution (capped for
                # memory); only the detector sees the page scaled to `max_side`. Measured on
                # generated forms: detector at 1280 with full-resolution crops ran 2.2 s/page at
                # CER 0.29%, against 2.9 s/page and CER 0.56% with the whole page at 1600.
                "Global.max_side_len": FULL_RESOLUTION_CAP,
                "Det.limit_type": "max",
                "Det.limit_side_len": settings.max_side,
                "Global.log_level": "warning",
                "Global.use_cls": settings.use_cls,
                "Global.text_score": settings.min_score,
                "Det.model_path": str(paths["det"]),
                "Det.ocr_version": version[settings.det_model],
                "Rec.model_path": str(paths["rec"]),
                "Rec.ocr_version": version[settings.rec_model],
                "Cls.model_path": str(paths["cls"]),
                "EngineConfig.onnxruntime.intra_op_num_threads": settings.threads,
                "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            }
        )
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)

    def read(self, image: np.ndarray) -> OcrResult:
        eng = self._engine
        t0 = time.perf_counter()
        height, width = image.shape[:2]
        try:
            img = eng.load_img(with_margin(image))
            pre, op_record = eng.preprocess_img(img)
            det, cls, rec, crops = eng.run_ocr_steps(pre, op_record)
            flipped = _flipped_share(det.boxes, cls.cls_res)
            out = eng.build_final_output(img, det, cls, rec, crops, op_record)
        except Exception as e:  # the engine raises bare exceptions of many kinds
            raise OcrError(f"OCR failed on a page: {type(e).__name__}: {e}") from e
        lines: list[OcrLine] = []
        boxes = getattr(out, "boxes", None)
        txts = getattr(out, "txts", None)
        scores = getattr(out, "scores", None)
        if boxes is not None and txts is not None and scores is not None:
            for box, text, score in zip(boxes, txts, scores, strict=True):
                if text.strip() and float(score) >= self.min_score:
                    lines.append(OcrLine(text.strip(), _box(box, width, height), round(float(score), 4)))
        return OcrResult(lines, flipped, (time.perf_counter() - t0) * 1000)


class RapidOcrOnnxruntimeEngine:
    """rapidocr-onnxruntime 1.4 (PP-OCRv4 det + rec), the classic engine."""

    def __init__(self, settings: OcrSettings) -> None:
        from rapidocr_onnxruntime import RapidOCR

        self.name = "rapidocr-onnxruntime/PP-OCRv4"
        self.min_score = settings.min_score
        self._engine = RapidOCR(
            max_side_len=settings.max_side,
            intra_op_num_threads=settings.threads,
            inter_op_num_threads=1,
            use_cls=settings.use_cls,
            text_score=settings.min_score,
        )

    def read(self, image: np.ndarray) -> OcrResult:
        t0 = time.perf_counter()
        height, width = image.shape[:2]
        try:
            result, _ = self._engine(with_margin(image))
        except Exception as e:
            raise OcrError(f"OCR failed on a page: {type(e).__name__}: {e}") from e
        lines = [
            OcrLine(str(text).strip(), _box(box, width, height), round(float(score), 4))
            for box, text, score in (result or [])
            if str(text).strip() and float(score) >= self.min_score
        ]
        return OcrResult(lines, 0.0, (time.perf_counter() - t0) * 1000)


def _flipped_share(boxes: Any, cls_res: Any) -> float:
    if boxes is None or not cls_res:
        return 0.0
    total = flipped = 0.0
    for box, (label, _score) in zip(boxes, cls_res, strict=False):
        width = float(np.linalg.norm(np.asarray(box[1]) - np.asarray(box[0])))
        total += width
        if str(label) == "180":
            flipped += width
    return flipped / total if total else 0.0


def load_engine(settings: OcrSettings) -> OcrEngine:
    if settings.engine == "none":
        return NullEngine()
    if settings.engine == "rapidocr-onnxruntime":
        return RapidOcrOnnxruntimeEngine(settings)
    return RapidOcrEngine(settings)
