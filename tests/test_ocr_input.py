import numpy as np

from appliance.ocr_input import ocr_grey


def test_red_seal_vanishes_but_coloured_text_stays_dark() -> None:
    page = np.full((40, 60, 3), 255, np.uint8)
    page[5:10, 5:20] = (0, 0, 0)  # black text
    page[15:20, 5:20] = (200, 40, 20)  # blue text (BGR)
    page[25:30, 5:20] = (40, 40, 220)  # red seal ink
    page[32:36, 5:20] = (30, 30, 110)  # dark red text overlapped by nothing: still darker than paper
    grey = ocr_grey(page)
    assert grey[7, 10] < 30
    assert grey[17, 10] < 100, "blue text must not vanish as it does on the red channel"
    assert grey[27, 10] > 200, "seal red becomes near-white"
    assert grey[0, 0] == 255


def test_grey_pages_are_read_as_they_are() -> None:
    page = np.arange(100, dtype=np.uint8).reshape(10, 10)
    assert ocr_grey(page) is page
