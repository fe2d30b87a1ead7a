"""Puts OCR lines into reading order: rows top to bottom, left to right within a row, and turns
boxes with the page when it is rotated by 180 degrees."""

from __future__ import annotations

from statistics import median

from appliance.records import OcrLine


def _yc(line: OcrLine) -> float:
    return sum(p[1] for p in line.box) / len(line.box)


def _xc(line: OcrLine) -> float:
    return sum(p[0] for p in line.box) / len(line.box)


def _height(line: OcrLine) -> float:
    ys = [p[1] for p in line.box]
    return max(ys) - min(ys)


def sort_lines(lines: list[OcrLine]) -> list[OcrLine]:
    if not lines:
        return []
    tol = 0.5 * median(max(_height(ln), 1.0) for ln in lines)
    rows: list[list[OcrLine]] = []
    row_y: list[float] = []
    for ln in sorted(lines, key=_yc):
        y = _yc(ln)
        if rows and abs(y - row_y[-1]) <= tol:
            rows[-1].append(ln)
            row_y[-1] = sum(_yc(x) for x in rows[-1]) / len(rows[-1])
        else:
            rows.append([ln])
            row_y.append(y)
    return [ln for row in rows for ln in sorted(row, key=_xc)]


def rotate_lines_180(lines: list[OcrLine], width: int, height: int) -> list[OcrLine]:
    """Boxes of a page turned by 180 degrees; corners stay clockwise from the top-left."""
    out = []
    for ln in lines:
        pts = [(round(width - x, 1), round(height - y, 1)) for x, y in ln.box]
        out.append(OcrLine(ln.text, tuple(pts[2:] + pts[:2]), ln.confidence))
    return out
