"""OCR-assisted metadata suggestions: on the true text of generated sample forms (many seeds) and
on hand-written OCR-like lines with the usual noise."""

from __future__ import annotations

import datetime as dt
import random

import pytest

from appliance.prefill import Suggestion, id_check_digit, suggest_metadata
from appliance.samples import (
    SampleDocument,
    make_form_content,
    plan_documents,
    render_document,
    render_form_page,
    render_id_copy_page,
    render_table_page,
)

TODAY = dt.date(2026, 1, 1)  # after every date the generator prints
VALID_ID = "11010519491231002X"
WRONG_CHECK = "110105194912310021"  # VALID_ID with a wrong check digit


def other_id(birth: str = "19850612", seq: str = "123") -> str:
    first17 = f"320322{birth}{seq}"
    return first17 + id_check_digit(first17)


def expected_doc_type(title: str) -> str:
    if title.endswith(("申请表", "申请书", "审批表")):
        return "申请表"
    if title.endswith("登记表"):
        return "登记表"
    return "其他"


def check_against_truth(lines: list[str], fields: dict[str, str]) -> None:
    got = suggest_metadata(lines, today=TODAY)
    wanted = {
        "id_number": fields["id_number"],
        "applicant": fields["name"],
        "phone": fields["phone"],
        "date": fields["apply_date"],
        "title": fields["title"],
        "doc_type": expected_doc_type(fields["title"]),
        "matter": fields["matter"],
    }
    assert {k: got[k].value for k in wanted if k in got} == wanted
    for name, suggestion in got.items():
        assert 0.0 < suggestion.confidence <= 1.0
        assert 0 <= suggestion.line < len(lines)
        if name not in ("title", "doc_type", "matter"):  # personal values: never in the reason
            assert suggestion.value not in suggestion.reason
    # the ID is labelled, so it is a confident suggestion from the line after its label
    assert got["id_number"].confidence >= 0.9
    assert lines[got["id_number"].line].replace(" ", "") == fields["id_number"]


@pytest.mark.parametrize("seed", [3, 11])
def test_generated_documents(seed: int) -> None:
    """Whole documents as the generator plans them (form plus household table, ID copy, blank)."""
    for plan in plan_documents(8, seed=seed, formats=("tiff", "pdf")):
        doc: SampleDocument = render_document(plan, seed=seed).document
        lines = [line.text for page in doc.pages for line in page.lines]
        check_against_truth(lines, doc.fields)


@pytest.mark.parametrize("first", range(0, 60, 15))
def test_many_generated_forms(first: int) -> None:
    """Many form contents, undegraded (truth only), with every companion page in varying order."""
    for seed in range(first, first + 15):
        rng = random.Random(f"prefill:{seed}")
        content = make_form_content(rng)
        pages = [render_form_page(rng, dpi=200, content=content)[1]]
        if seed % 3:
            pages.append(render_table_page(rng, dpi=200, content=content)[1])
        if seed % 2:
            pages.append(render_id_copy_page(rng, dpi=200, person=content.person, matter=content.matter)[1])
        lines = [line.text for page in pages for line in page.lines]
        check_against_truth(lines, content.fields())


# --- hand-written OCR-like lines --------------------------------------------------------------------
def suggest(*lines: str) -> dict[str, Suggestion]:
    return suggest_metadata(list(lines), today=TODAY)


def values(*lines: str) -> dict[str, str]:
    return {k: s.value for k, s in suggest(*lines).items()}


def test_ocr_noise_in_numbers() -> None:
    got = values(
        "居民身份证申领登记表",
        "申请人：张 伟",
        "身份证号码：１１０１０５ １９４９１２３１ ００２ｘ",
        "联系电话: 138 1234 5678",
        "申请日期：２０２５年１１月３日",
    )
    assert got["id_number"] == VALID_ID
    assert got["applicant"] == "张伟"
    assert got["phone"] == "13812345678"
    assert got["date"] == "2025-11-03"


@pytest.mark.parametrize(
    "line",
    [
        f"公民身份号码 {VALID_ID}",
        f"公民身份号码：{VALID_ID[:6]} {VALID_ID[6:14]} {VALID_ID[14:]}",
        f"证件号码:{VALID_ID[:6]}-{VALID_ID[6:14]}-{VALID_ID[14:]}",
        f"身份证号 {VALID_ID[:17]} x",
        f"身份证号 {VALID_ID[:-1]}ｘ",
    ],
)
def test_id_number_spellings(line: str) -> None:
    got = suggest(line)
    assert got["id_number"].value == VALID_ID
    assert got["id_number"].confidence >= 0.9


def test_wrong_check_digit_is_never_suggested() -> None:
    assert "id_number" not in suggest("公民身份号码", WRONG_CHECK)
    assert "id_number" not in suggest(f"身份证号码：{WRONG_CHECK[:6]} {WRONG_CHECK[6:]}")
    # ... and a wrong number next to the label does not beat a valid one elsewhere
    got = suggest("公民身份号码", WRONG_CHECK, "配偶", other_id())
    assert got["id_number"].value == other_id()
    assert got["id_number"].line == 3


@pytest.mark.parametrize(
    "first17",
    [
        "00010519491231001",  # region 00
        "91130123123456789",  # first digit 9: no province (a 统一社会信用代码 can look like this)
        "11010520270101001",  # born after today
        "11010518991231001",  # born before 1900
    ],
)
def test_implausible_numbers_are_not_ids(first17: str) -> None:
    assert "id_number" not in suggest("身份证号码", first17 + id_check_digit(first17))


def test_credit_code_is_not_an_id() -> None:
    assert "id_number" not in suggest("统一社会信用代码", "91130123MA0ABCDE1X")


def test_labelled_id_is_preferred_to_earlier_unlabelled_ones() -> None:
    got = suggest("家庭成员", f"李四 配偶 {other_id()}", "公民身份号码", VALID_ID)
    assert got["id_number"].value == VALID_ID
    assert got["id_number"].line == 3
    unlabelled = suggest(
        "家庭成员", f"李四 {other_id()}", f"王五 {other_id(seq='125')}", f"李四 {other_id()}"
    )
    assert unlabelled["id_number"].value == other_id()  # the most frequent one
    assert unlabelled["id_number"].confidence < 0.9


@pytest.mark.parametrize(
    ("line", "phone"),
    [
        ("联系电话：13812345678", "13812345678"),
        ("手机 138-1234-5678", "13812345678"),
        ("电话 (0371)6512 3456", "0371-65123456"),
        ("联系方式：０１０－８８８８ ８８８８", "010-88888888"),
        ("联系电话 0371 6512345", "0371-6512345"),
    ],
)
def test_phone_spellings(line: str, phone: str) -> None:
    assert values(line)["phone"] == phone


def test_phone_next_to_label_is_preferred() -> None:
    got = suggest("紧急联系人 13900001111", "联系电话", "13812345678")
    assert got["phone"].value == "13812345678"
    assert "phone" not in suggest("编号：ZW202303050001", "统一社会信用代码 91130123MA0ABCDE1X")
    # phone digits inside an ID number are not a phone, however OCR splits the number
    assert "phone" not in suggest(f"身份证 {VALID_ID[:4]} {VALID_ID[4:8]} {VALID_ID[8:12]} {VALID_ID[12:]}")
    got = suggest("公民身份号码 13012319610 2115682")  # the first 11 digits look like a mobile
    assert got["id_number"].value == "130123196102115682"
    assert "phone" not in got


@pytest.mark.parametrize(
    ("line", "iso"),
    [
        ("日期：2025年3月5日", "2025-03-05"),
        ("申请日期 2025-03-05", "2025-03-05"),
        ("填表日期:2025.3.5", "2025-03-05"),
        ("日期 2025/03/05", "2025-03-05"),
        ("填表日期：二〇二五年三月五日", "2025-03-05"),
        ("申请日期：二〇二五年十二月三十一日", "2025-12-31"),
    ],
)
def test_date_spellings(line: str, iso: str) -> None:
    assert values(line)["date"] == iso


def test_date_choice() -> None:
    # birth dates, ID card validity and future dates are not the document's date
    got = suggest(
        "出生日期", "1961年2月11日", "有效期限", "2016.02.11-2036.02.11", f"公民身份号码 {VALID_ID}",
        "申请人签名：", "2025年6月12日", "西平县行政审批局", "2025年6月14日", "申请人签名：", "2025年6月12日",
    )  # fmt: skip
    assert got["date"].value == "2025-06-12"  # unlabelled: the most frequent
    assert got["date"].confidence < 0.9
    assert values("出生日期：1990年3月7日", "申请日期：2025年6月12日")["date"] == "2025-06-12"
    assert values("2027年1月1日", "1948年1月1日", "2025年2月30日") == {}
    assert values("出生日期：1990年3月7日") == {}
    assert values("出生", "1990年3月7日", "有效期限", "2016.02.11-长期", "签发日期 2016年2月11日") == {}
    # the birth date printed beside the ID (on the same day as the ID says) is skipped
    assert values(f"{VALID_ID}", "1949年12月31日", "2025年5月1日")["date"] == "2025-05-01"


def test_applicant() -> None:
    assert values("申请人：金艳颖")["applicant"] == "金艳颖"
    assert values("申请人: 金艳颖  编号：BJ2023")["applicant"] == "金艳颖"
    assert values("姓名", "金艳颖", "性别", "女")["applicant"] == "金艳颖"
    assert values("姓名：王芳 性别：女 民族：汉")["applicant"] == "王芳"
    assert values("姓名王芳性别女")["applicant"] == "王芳"
    assert values("申请人姓名：阿依古丽·买买提")["applicant"] == "阿依古丽·买买提"
    assert values("姓名 阿依古丽•买买提")["applicant"] == "阿依古丽·买买提"
    assert values("办理人 欧阳明")["applicant"] == "欧阳明"
    assert values("姓\u3000\u3000名", "金艳颖")["applicant"] == "金艳颖"  # letter-spaced label
    assert values("申 请 人：张 伟")["applicant"] == "张伟"
    got = suggest("姓名", "金艳颖", "申请人：金艳颖")
    assert got["applicant"].line == 2 and got["applicant"].confidence == 0.9


@pytest.mark.parametrize(
    "lines",
    [
        ("申请人签名：", "2025年6月12日"),
        ("申请人承诺：", "本人承诺所填写内容真实有效"),
        ("经办人：许杰",),
        ("姓名", "与申请人关系", "公民身份号码"),
        ("申请人：", "联系电话"),
        ("姓名：",),
        ("申请人：张三丰李四王五",),
        ("姓名", "备注"),
        ("申请人：", "签字盖章"),
        ("申请人单位：西平县医院",),
    ],
)
def test_no_applicant_from_labels_or_other_people(lines: tuple[str, ...]) -> None:
    assert "applicant" not in values(*lines)


@pytest.mark.parametrize(
    ("lines", "title", "doc_type", "matter"),
    [
        (("居民身份证申领登记表", "编号：ZW1"), "居民身份证申领登记表", "登记表", "居民身份证申领"),
        (("不动产登记申请书", "登记事项", "转移登记"), "不动产登记申请书", "申请表", "转移登记"),
        (("最低生活保障申请审批表",), "最低生活保障申请审批表", "申请表", "最低生活保障"),
        (("户口迁移申请表", "办理事项：户口迁入"), "户口迁移申请表", "申请表", "户口迁入"),
        (("收入 证明", "兹证明"), "收入证明", "证明", None),
        (
            ("居 民 身 份 证 申 领 登 记 表", "办\u3000理\u3000事\u3000项", "首次 申领"),
            "居民身份证申领登记表",
            "登记表",
            "首次申领",
        ),
        (("居民身份证复印件", "姓名"), "居民身份证复印件", "身份证明", None),
        (("第1页/共3页", "关于补充材料的通知"), "关于补充材料的通知", "通知", None),
        (("家庭成员及收入情况表",), "家庭成员及收入情况表", "其他", None),
    ],
)
def test_title_doc_type_and_matter(
    lines: tuple[str, ...], title: str, doc_type: str, matter: str | None
) -> None:
    got = values(*lines)
    assert got["title"] == title
    assert got["doc_type"] == doc_type
    assert got.get("matter") == matter


def test_label_lines_are_not_titles() -> None:
    assert "title" not in values("编号：ZW202303050001", "申请日期：2025年6月12日", "申请材料清单：")
    assert "title" not in values("本人承诺所填写内容真实有效，所提交材料真实、合法、有效。")
    assert values(*["x"] * 8, "居民身份证申领登记表").get("title") is None  # not near the top


def test_nothing_found() -> None:
    assert suggest_metadata([], today=TODAY) == {}
    assert suggest_metadata(["", "   ", "审核意见：", "经审核，符合办理条件，同意办理。"], today=TODAY) == {}
