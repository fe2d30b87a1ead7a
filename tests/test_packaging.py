"""The environment the appliance ships with: headless OpenCV only, OCR models bundled."""

from __future__ import annotations

import importlib.metadata as md
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.ocr import model_paths
from appliance.settings import OcrSettings


def test_opencv_gui_build_is_not_installed() -> None:
    with pytest.raises(md.PackageNotFoundError):
        md.version("opencv-python")
    import cv2

    files = md.files("opencv-python-headless") or []
    cv2_dir = Path(cv2.__file__).resolve().parent
    owned = {Path(str(f.locate())).resolve().parent for f in files if f.name.startswith("cv2")}
    assert cv2_dir in owned or any(cv2_dir == p or cv2_dir in p.parents for p in owned)


@pytest.mark.parametrize("det,rec", [("PP-OCRv4", "PP-OCRv6"), ("PP-OCRv6", "PP-OCRv4")])
def test_models_ship_in_the_wheels(det: str, rec: str) -> None:
    paths = model_paths(OcrSettings(det_model=det, rec_model=rec))  # type: ignore[arg-type]
    for p in paths.values():
        assert p.is_file() and p.stat().st_size > 100_000 and "site-packages" in str(p)


def test_ocr_runs_with_the_network_cut(corpus: Path) -> None:
    code = f"""
import socket
def refuse(*a, **k):
    raise OSError("network is cut in this test")
socket.socket.connect = refuse
socket.create_connection = refuse
import cv2
from appliance.ocr import load_engine
from appliance.settings import OcrSettings
img = cv2.imread({str(corpus / "ocr" / "rapidocr__ch_en_num.jpg")!r}, cv2.IMREAD_GRAYSCALE)
print([l.text for l in load_engine(OcrSettings()).read(img).lines][0])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "正品促销"
