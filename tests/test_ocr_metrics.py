from tests.ocr_metrics import cer, normalise


def test_width_punctuation_and_space_are_not_errors() -> None:
    assert normalise("姓名：张三， ＩＤ　１２３") == normalise("姓名:张三,ID 123")


def test_cer_counts_real_differences() -> None:
    assert cer([("公民身份号码", "公民身份号码")]) == 0.0
    assert cer([("公民身分号码", "公民身份号码")]) == 1 / 6
    assert cer([("", "abcd"), ("abcd", "abcd")]) == 0.5
