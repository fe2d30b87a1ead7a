"""Upright, undegraded renderings of the paperwork a county service hall scans.

Every piece of printed text goes through :meth:`_Sheet.text`, which draws it and records a
:class:`TextLine` with its ink box, in reading order (top to bottom; cells of one table row left
to right; the lines of a wrapped cell top to bottom). Seal arc text and signatures are drawn
without recording: OCR is not expected to read them.
"""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from PIL import Image, ImageDraw, ImageFont

from .fonts import load_font, missing_glyphs
from .identity import (
    COMPOUND_SURNAMES,
    REGIONS,
    SURNAMES,
    Person,
    Region,
    random_address,
    random_credit_code,
    random_name,
    random_person,
    random_phone,
    valid_id_number,
)
from .seal import stamp_seal
from .truth import Box, SamplePage, TextLine

__all__ = [
    "FORM_TITLES",
    "FormContent",
    "a4_size",
    "format_date",
    "make_form_content",
    "render_blank_page",
    "render_form_page",
    "render_id_copy_page",
    "render_table_page",
]

INK = (16, 16, 16)
_TODAY = dt.date(2024, 12, 31)


def _catmull_rom(points: Sequence[tuple[float, float]], steps: int) -> list[tuple[float, float]]:
    """A smooth curve through ``points`` (uniform Catmull-Rom spline)."""
    if len(points) < 2:
        return list(points)
    pts = [points[0], *points, points[-1]]
    out: list[tuple[float, float]] = []

    def blend(p0: float, p1: float, p2: float, p3: float, t: float) -> float:
        return 0.5 * (
            2 * p1
            + (p2 - p0) * t
            + (2 * p0 - 5 * p1 + 4 * p2 - p3) * t * t
            + (3 * p1 - p0 - 3 * p2 + p3) * t * t * t
        )

    for i in range(1, len(pts) - 2):
        (x0, y0), (x1, y1), (x2, y2), (x3, y3) = pts[i - 1], pts[i], pts[i + 1], pts[i + 2]
        for k in range(steps):
            t = k / steps
            out.append((blend(x0, x1, x2, x3, t), blend(y0, y1, y2, y3, t)))
    out.append(points[-1])
    return out


def a4_size(dpi: int) -> tuple[int, int]:
    """A4 in pixels: 1654x2339 at 200 dpi, 2480x3508 at 300 dpi."""
    return round(210 / 25.4 * dpi), round(297 / 25.4 * dpi)


def format_date(d: dt.date, style: str) -> str:
    if style == "padded":
        return f"{d.year}年{d.month:02d}月{d.day:02d}日"
    return f"{d.year}年{d.month}月{d.day}日"


# --- content ---------------------------------------------------------------------------------
@dataclass
class FormContent:
    """Everything printed on one application form (and its companion pages)."""

    title: str
    person: Person
    matter_label: str
    matter: str
    extra_rows: list[tuple[str, str]]
    apply_date: dt.date
    approve_date: dt.date
    serial: str
    unit_name: str
    date_style: str
    family: list[tuple[str, str, str, str]] = field(default_factory=list)
    declaration: str = ""
    opinion: str = ""
    clerk: str = ""
    attachments: list[str] = field(default_factory=list)

    def fields(self) -> dict[str, str]:
        p = self.person
        return {
            "title": self.title,
            "name": p.name,
            "sex": p.sex,
            "ethnicity": p.ethnicity,
            "birth_date": p.birth_date.isoformat(),
            "id_number": p.id_number,
            "phone": p.phone,
            "address": p.address,
            "matter": self.matter,
            "apply_date": self.apply_date.isoformat(),
        }


def _extras_id_card(rng: random.Random, region: Region, p: Person) -> list[tuple[str, str]]:
    return [("户籍所在地", f"{region.county}公安局{rng.choice(('城关', '城南', '城北', '东关'))}派出所")]


def _extras_property(rng: random.Random, region: Region, p: Person) -> list[tuple[str, str]]:
    return [
        ("不动产坐落", random_address(rng, region).removeprefix(region.province + region.city)),
        ("建筑面积", f"{rng.uniform(45, 180):.2f}平方米"),
        ("用途", rng.choice(("住宅", "商业", "住宅"))),
    ]


def _extras_business(rng: random.Random, region: Region, p: Person) -> list[tuple[str, str]]:
    trade = rng.choice(("商贸", "农业科技", "建材", "餐饮管理", "电子商务", "物流"))
    brand = rng.choice(("宏达", "鑫源", "兴盛", "恒通", "丰泰", "瑞丰", "金穗", "华信"))
    return [
        ("企业名称", f"{region.county}{brand}{trade}有限公司"),
        ("统一社会信用代码", random_credit_code(rng, region)),
    ]


def _extras_social(rng: random.Random, region: Region, p: Person) -> list[tuple[str, str]]:
    bank = rng.choice(("中国农业银行", "中国工商银行", "中国建设银行", "中国邮政储蓄银行"))
    return [("参保地", region.full_name), ("开户银行", f"{bank}{region.county}支行")]


def _extras_migration(rng: random.Random, region: Region, p: Person) -> list[tuple[str, str]]:
    other = rng.choice([r for r in REGIONS if r != region])
    return [
        ("迁出地", random_address(rng, other)),
        ("迁入地", p.address),
        ("迁移原因", rng.choice(("投靠亲属", "购房落户", "工作调动", "婚姻迁移", "大中专毕业"))),
    ]


def _extras_dibao(rng: random.Random, region: Region, p: Person) -> list[tuple[str, str]]:
    return [
        ("家庭人口", f"{rng.randint(1, 6)}人"),
        ("家庭月收入", f"{rng.randint(300, 2400)}元"),
        ("申请原因", rng.choice(("因病致贫", "家庭成员重度残疾", "无劳动能力", "无固定收入来源"))),
    ]


def _extras_medical(rng: random.Random, region: Region, p: Person) -> list[tuple[str, str]]:
    return [("参保类别", "城乡居民基本医疗保险"), ("缴费年度", f"{rng.randint(2023, 2025)}年度")]


def _extras_residence(rng: random.Random, region: Region, p: Person) -> list[tuple[str, str]]:
    return [
        ("居住地址", random_address(rng, region)),
        ("居住事由", rng.choice(("务工", "经商", "就学", "投靠亲友"))),
    ]


_Extras = Callable[[random.Random, Region, Person], list[tuple[str, str]]]

# (title, seal unit suffix, matter label, matter choices, extra rows, attachments)
_FORM_SPECS: tuple[tuple[str, str, str, tuple[str, ...], _Extras, tuple[str, ...]], ...] = (
    (
        "居民身份证申领登记表",
        "公安局",
        "办理事项",
        ("首次申领", "有效期满换领", "损坏换领", "丢失补领"),
        _extras_id_card,
        ("户口簿", "近期免冠照片"),
    ),
    (
        "不动产登记申请书",
        "不动产登记中心",
        "登记事项",
        ("首次登记", "转移登记", "变更登记", "抵押登记"),
        _extras_property,
        ("不动产权属证书", "购房合同", "完税凭证"),
    ),
    (
        "营业执照变更登记申请表",
        "行政审批局",
        "变更事项",
        ("住所变更", "法定代表人变更", "经营范围变更", "注册资本变更"),
        _extras_business,
        ("营业执照正副本", "股东会决议", "章程修正案"),
    ),
    (
        "社会保障卡申领登记表",
        "人力资源和社会保障局",
        "办理事项",
        ("首次申领", "补领", "换领"),
        _extras_social,
        ("户口簿", "近期免冠照片"),
    ),
    (
        "户口迁移申请表",
        "公安局",
        "办理事项",
        ("户口迁入", "户口迁出"),
        _extras_migration,
        ("户口簿", "准予迁入证明", "房产证明"),
    ),
    (
        "最低生活保障申请审批表",
        "民政局",
        "办理事项",
        ("最低生活保障申请", "最低生活保障复核"),
        _extras_dibao,
        ("户口簿", "家庭收入证明", "病历资料"),
    ),
    (
        "城乡居民基本医疗保险参保登记表",
        "医疗保障局",
        "办理事项",
        ("参保登记", "信息变更", "停保登记"),
        _extras_medical,
        ("户口簿",),
    ),
    (
        "居住证申领登记表",
        "公安局",
        "办理事项",
        ("首次申领", "签注", "换领"),
        _extras_residence,
        ("租房合同", "近期免冠照片", "就业证明"),
    ),
)

FORM_TITLES: tuple[str, ...] = tuple(spec[0] for spec in _FORM_SPECS)

_DECLARATIONS = (
    "本人承诺所填写内容真实有效，所提交材料真实、合法、有效，如有虚假，本人愿意承担相应的法律责任。",
    "本人承诺以上填写内容及提交的申请材料真实有效，如有隐瞒或虚假，愿承担由此产生的一切法律责任。",
    "所填写内容真实有效，提交的材料复印件与原件一致，如有不实，本人自愿承担相应责任。",
)
_OPINIONS = (
    "经审核，符合办理条件，同意办理。",
    "经审核，申请材料齐全，符合法定形式，同意受理。",
    "经审查，申请人提交材料齐全，情况属实，同意办理。",
    "经审核，符合相关规定，准予办理。",
)


def _family(rng: random.Random, p: Person, n: int) -> list[tuple[str, str, str, str]]:
    rows: list[tuple[str, str, str, str]] = []
    candidates: list[tuple[str, str, dt.date]] = []
    spouse_sex = "女" if p.sex == "男" else "男"
    spouse_name = random_name(rng, spouse_sex)
    # children usually carry the father's surname; the applicant's father carries the applicant's
    own_surname = p.name[:2] if p.name[:2] in COMPOUND_SURNAMES else p.name[0]
    kid_surname = own_surname if p.sex == "男" else spouse_name[0]
    candidates.append(("配偶", spouse_sex, p.birth_date + dt.timedelta(days=rng.randint(-1500, 1500))))
    for _ in range(2):
        kid = p.birth_date + dt.timedelta(days=rng.randint(22 * 365, 36 * 365))
        sex = rng.choice(("男", "女"))
        candidates.append(("儿子" if sex == "男" else "女儿", sex, kid))
    candidates.append(("父亲", "男", p.birth_date - dt.timedelta(days=rng.randint(21 * 365, 34 * 365))))
    candidates.append(("母亲", "女", p.birth_date - dt.timedelta(days=rng.randint(20 * 365, 32 * 365))))
    for relation, sex, birth in candidates:
        if len(rows) >= n or birth > _TODAY - dt.timedelta(days=30):
            continue
        if relation == "配偶":
            name = spouse_name
        else:
            given = random_name(rng, sex)
            given = given[2:] if given[:2] in COMPOUND_SURNAMES else given[1:]
            if relation == "父亲":
                surname = own_surname
            elif relation in ("儿子", "女儿"):
                surname = kid_surname
            else:  # mother: her own family's surname
                surname = rng.choice(SURNAMES)
            name = surname + given
        region = p.region if rng.random() < 0.85 else rng.choice(REGIONS)
        id_number = valid_id_number(rng, birth, region_code=region.code, sex=sex)
        age = (_TODAY - birth).days // 365
        phone = random_phone(rng) if age >= 16 else ""
        rows.append((name, relation, id_number, phone))
    return rows


def make_form_content(rng: random.Random, *, title: str | None = None) -> FormContent:
    """Random contents for one application form (``title`` picks the form type)."""
    specs = [s for s in _FORM_SPECS if title is None or s[0] == title]
    if not specs:
        raise ValueError(f"unknown form title {title!r}; known: {', '.join(FORM_TITLES)}")
    form_title, unit_suffix, matter_label, matters, extras, attachments = rng.choice(specs)
    region = rng.choice(REGIONS)
    person = random_person(rng, region=region)
    apply_date = dt.date(2023, 1, 3) + dt.timedelta(days=rng.randint(0, 700))
    approve_date = apply_date + dt.timedelta(days=rng.randint(0, 12))
    if unit_suffix != "行政审批局" and rng.random() < 0.3:
        unit_suffix = "行政审批局"
    base_attachments = ["居民身份证复印件", *attachments]
    return FormContent(
        title=form_title,
        person=person,
        matter_label=matter_label,
        matter=rng.choice(matters),
        extra_rows=extras(rng, region, person),
        apply_date=apply_date,
        approve_date=approve_date,
        serial=f"{rng.choice(('ZW', 'SP', 'BJ'))}{apply_date:%Y%m%d}{rng.randint(1, 9999):04d}",
        unit_name=f"{region.county}{unit_suffix}",
        date_style=rng.choice(("padded", "padded", "plain")),
        family=_family(rng, person, rng.randint(2, 3)),
        declaration=rng.choice(_DECLARATIONS),
        opinion=rng.choice(_OPINIONS),
        clerk=random_name(rng, rng.choice(("男", "女"))),
        attachments=base_attachments,
    )


# --- drawing ---------------------------------------------------------------------------------
class _Sheet:
    """A white A4 page plus the truth lines drawn on it so far."""

    def __init__(self, dpi: int, rng: random.Random) -> None:
        self.dpi = dpi
        self.width, self.height = a4_size(dpi)
        self.img = Image.new("RGB", (self.width, self.height), (255, 255, 255))
        self.draw = ImageDraw.Draw(self.img)
        self.lines: list[TextLine] = []
        self.seal_boxes: list[Box] = []
        self.signature_boxes: list[Box] = []
        self.margin_x = self.mm(rng.uniform(19, 25))
        self.margin_top = self.mm(rng.uniform(18, 26))
        self.margin_bottom = self.mm(18)
        self.body_style = rng.choice(("serif", "serif", "sans"))
        self.value_style = rng.choice((self.body_style, "sans"))
        self.body_px = self.pt(rng.choice((11.0, 11.5, 12.0)))
        self.line_w = max(2, round(dpi / 100))

    def pt(self, pt: float) -> int:
        return round(pt * self.dpi / 72)

    def mm(self, mm: float) -> int:
        return round(mm * self.dpi / 25.4)

    def font(self, style: str, px: int) -> ImageFont.FreeTypeFont:
        return load_font(style, px)

    def text_width(self, s: str, font: ImageFont.FreeTypeFont) -> float:
        return float(font.getlength(s))

    def text(
        self,
        xy: tuple[float, float],
        s: str,
        font: ImageFont.FreeTypeFont,
        *,
        anchor: str = "ls",
        record: bool = True,
        stroke: int = 0,
        fill: tuple[int, int, int] = INK,
    ) -> Box:
        missing = missing_glyphs(font, s)
        if missing:  # a generator bug: the truth would not match the print
            raise ValueError(f"font {font.getname()} has no glyph for {''.join(sorted(missing))!r}")
        self.draw.text(xy, s, font=font, fill=fill, anchor=anchor, stroke_width=stroke, stroke_fill=fill)
        x0, y0, x1, y1 = self.draw.textbbox(xy, s, font=font, anchor=anchor, stroke_width=stroke)
        box = (math.floor(x0), math.floor(y0), math.ceil(x1), math.ceil(y1))
        if record and s.strip():
            self.lines.append(TextLine(s, box))
        return box

    def hline(self, x0: float, x1: float, y: float, width: int | None = None) -> None:
        self.draw.line((x0, y, x1, y), fill=INK, width=width or self.line_w)

    def vline(self, x: float, y0: float, y1: float, width: int | None = None) -> None:
        self.draw.line((x, y0, x, y1), fill=INK, width=width or self.line_w)

    def fit_font(self, s: str, style: str, px: int, max_w: float) -> ImageFont.FreeTypeFont:
        """The body font, shrunk (not below 11 pt) if ``s`` would not fit in ``max_w``."""
        floor_px = self.pt(11)
        font = self.font(style, px)
        while px > floor_px and self.text_width(s, font) > max_w:
            px -= 1
            font = self.font(style, px)
        return font

    def wrap(self, s: str, font: ImageFont.FreeTypeFont, max_w: float, indent: float = 0.0) -> list[str]:
        out: list[str] = []
        cur = ""
        for ch in s:
            limit = max_w - (indent if not out else 0.0)
            if cur and self.text_width(cur + ch, font) > limit:
                # keep closing punctuation with the previous character (避头尾)
                if ch in "，。、；：！？）》”":
                    out.append(cur[:-1])
                    cur = cur[-1] + ch
                    continue
                out.append(cur)
                cur = ch
            else:
                cur += ch
        if cur:
            out.append(cur)
        return out

    def paragraph(
        self,
        s: str,
        x: float,
        y: float,
        max_w: float,
        font: ImageFont.FreeTypeFont,
        leading: float,
        first_indent: float = 0.0,
    ) -> float:
        """Draw wrapped text with its first baseline at ``y``; return the last baseline."""
        lines = self.wrap(s, font, max_w, first_indent)
        for i, line in enumerate(lines):
            self.text((x + (first_indent if i == 0 else 0.0), y), line, font)
            if i < len(lines) - 1:
                y += leading
        return y

    def table(
        self,
        x0: float,
        y0: float,
        rows: Sequence[Sequence[tuple[str, float, bool]]],
        row_h: float,
        label_style: str,
        value_style: str,
        outer_w: int | None = None,
    ) -> float:
        """Ruled table. Each row is a list of (text, cell width px, is_label). Labels are
        centred, values left-aligned. Returns the bottom y."""
        pad = self.body_px * 0.45
        y = y0
        x_end = x0 + sum(w for _, w, _ in rows[0])
        self.hline(x0, x_end, y0, outer_w)
        for row in rows:
            # lay out every cell first: a cell that does not fit on one line wraps and grows the row
            fonts: list[ImageFont.FreeTypeFont] = []
            wrapped: list[list[str]] = []
            for text, w, is_label in row:
                style = label_style if is_label else value_style
                font = self.fit_font(text, style, self.body_px, w - 2 * pad)
                fonts.append(font)
                wrapped.append(self.wrap(text, font, w - 2 * pad) if text else [])
            leading = self.body_px * 1.35
            n_max = max((len(w) for w in wrapped), default=1)
            h = max(row_h, n_max * leading + self.body_px * 0.8)
            x = x0
            for (_text, w, is_label), font, parts in zip(row, fonts, wrapped, strict=True):
                if parts:
                    first = y + h / 2 - (len(parts) - 1) * leading / 2
                    for k, part in enumerate(parts):
                        cy = first + k * leading
                        if is_label or w < self.body_px * 4:
                            self.text((x + w / 2, cy), part, font, anchor="mm")
                        else:
                            self.text((x + pad, cy), part, font, anchor="lm")
                x += w
            xs = [x0]
            for _, w, _ in row:
                xs.append(xs[-1] + w)
            for k, xv in enumerate(xs):
                self.vline(xv, y, y + h, outer_w if k in (0, len(xs) - 1) else None)
            y += h
            self.hline(x0, x_end, y, outer_w if row is rows[-1] else None)
        return y

    def scribble(self, rng: random.Random, x0: float, y_mid: float, n_chars: int, size: float) -> Box:
        """A hand signature in running script: each character a few smooth strokes joined into
        one pen trail. Not recorded as text; returns its box."""
        colour = rng.choice(((25, 45, 140), (20, 35, 110), (30, 30, 40)))
        width = max(2, round(self.dpi / 65))
        trail: list[tuple[float, float]] = []
        x = x0
        for _ in range(n_chars):
            cell = size * rng.uniform(0.75, 1.05)
            for _ in range(rng.randint(2, 3)):
                # a stroke sweeps mostly left to right, with the odd hook back
                xs = sorted(rng.uniform(0.0, cell) for _ in range(rng.randint(3, 5)))
                if rng.random() < 0.4:
                    xs.append(xs[-1] - rng.uniform(0.1, 0.4) * cell)
                ctrl = [(x + xv, y_mid + rng.uniform(-0.45, 0.45) * size) for xv in xs]
                trail.extend(_catmull_rom(ctrl, 12))
            x += cell * rng.uniform(0.95, 1.25)
        self.draw.line(trail, fill=colour, width=width, joint="curve")
        xs = [p[0] for p in trail]
        ys = [p[1] for p in trail]
        pad = width
        box = (
            math.floor(min(xs)) - pad,
            math.floor(min(ys)) - pad,
            math.ceil(max(xs)) + pad,
            math.ceil(max(ys)) + pad,
        )
        self.signature_boxes.append(box)
        return box

    def page(self, kind: str, *, blank: bool = False) -> SamplePage:
        return SamplePage(
            kind=kind,
            width=self.width,
            height=self.height,
            dpi=self.dpi,
            lines=list(self.lines),
            seal_boxes=list(self.seal_boxes),
            signature_boxes=list(self.signature_boxes),
            blank=blank,
            colour=bool(self.seal_boxes),
            mode="RGB" if self.seal_boxes else "L",
        )


def _title(sheet: _Sheet, rng: random.Random, text: str) -> float:
    px = sheet.pt(rng.choice((18.0, 20.0, 22.0)))
    font = sheet.fit_font(text, "sans", px, sheet.width - 2 * sheet.margin_x)
    y = sheet.margin_top + px
    sheet.text((sheet.width / 2, y), text, font, anchor="ms", stroke=max(1, round(sheet.dpi / 200)))
    return y + sheet.mm(9)


def _family_rows(
    sheet: _Sheet, family: Sequence[tuple[str, str, str, str]], content_w: float
) -> list[list[tuple[str, float, bool]]]:
    fr = (0.17, 0.19, 0.36, 0.28)
    widths = [content_w * f for f in fr]
    header = ["姓名", "与申请人关系", "公民身份号码", "联系电话"]
    rows = [[(h, w, True) for h, w in zip(header, widths, strict=True)]]
    for member in family:
        rows.append([(v, w, False) for v, w in zip(member, widths, strict=True)])
    return rows


def render_form_page(
    rng: random.Random,
    *,
    dpi: int,
    content: FormContent | None = None,
    seal: bool = True,
    footer: str | None = None,
) -> tuple[Image.Image, SamplePage]:
    """An application form: title, applicant table, family table, declaration, signature,
    approval opinion and (when ``seal``) a red seal stamped over the unit name and date."""
    c = content if content is not None else make_form_content(rng)
    layout_seed = rng.getrandbits(64)
    # Lay out with generous spacing; squeeze rows and leading when the content runs long.
    for squeeze in (1.0, 0.9, 0.8, 0.7, 0.62):
        s, unit_box, date_box, bottom = _layout_form(random.Random(layout_seed), dpi, c, footer, squeeze)
        if bottom <= s.height - s.margin_bottom - s.body_px * 2.5:
            break
    else:
        raise ValueError(f"form content of {c.title} does not fit on one page")
    if seal:
        # stamp over the unit name and date (骑年盖月), right of centre and a little askew as by hand
        d = s.mm(42)
        cx = round((unit_box[0] + unit_box[2]) / 2 + rng.uniform(0.15, 0.35) * d)
        cy = round((unit_box[1] + date_box[3]) / 2 + rng.uniform(-0.2, 0.1) * d)
        s.seal_boxes.append(stamp_seal(s.img, rng, center=(cx, cy), dpi=dpi, unit_name=c.unit_name))
    return s.img, s.page("form")


def _signature(
    s: _Sheet, rng: random.Random, x: float, y: float, label: str, font: ImageFont.FreeTypeFont
) -> None:
    """``label`` at baseline ``y`` and (usually) a scribbled signature well clear of it."""
    box = s.text((x, y), label, font)
    if rng.random() < 0.3:  # not signed yet: forms are often scanned at the counter before signing
        return
    s.scribble(
        rng,
        box[2] + s.body_px * rng.uniform(1.6, 2.4),
        y - s.body_px * 0.4,
        rng.choice((2, 3, 3)),
        s.body_px * 1.6,
    )


def _layout_form(
    rng: random.Random, dpi: int, c: FormContent, footer: str | None, squeeze: float
) -> tuple[_Sheet, Box, Box, float]:
    p = c.person
    s = _Sheet(dpi, rng)
    body = s.font(s.body_style, s.body_px)
    x0 = s.margin_x
    w = s.width - 2 * s.margin_x
    y = _title(s, rng, c.title)

    # header line: serial number left, application date right
    s.text((x0, y), f"编号：{c.serial}", body)
    s.text((x0 + w, y), f"申请日期：{format_date(c.apply_date, c.date_style)}", body, anchor="rs")
    y += s.body_px * 0.9

    # applicant table
    pad = s.body_px * 0.45
    label_w = (
        s.text_width(
            "统一社会信用代码" if any(len(k) > 6 for k, _ in c.extra_rows) else "公民身份号码",
            s.font(s.body_style, s.body_px),
        )
        + 2 * pad
        + 2
    )
    short_label = s.text_width("联系电话", body) + 2 * pad + 2
    rest = w - label_w
    sex_w = s.text_width("性别", body) + 2 * pad + 2
    val_small = s.text_width("蒙古", body) + 2 * pad + 2
    name_w = rest - 2 * sex_w - 2 * val_small
    birth_w = rest - short_label - rest * 0.42
    rows: list[list[tuple[str, float, bool]]] = [
        [
            ("姓名", label_w, True),
            (p.name, name_w, False),
            ("性别", sex_w, True),
            (p.sex, val_small, False),
            ("民族", sex_w, True),
            (p.ethnicity, val_small, False),
        ],
        [
            ("出生日期", label_w, True),
            (format_date(p.birth_date, c.date_style), birth_w, False),
            ("联系电话", short_label, True),
            (p.phone, rest * 0.42, False),
        ],
        [("公民身份号码", label_w, True), (p.id_number, rest, False)],
        [("住址", label_w, True), (p.address, rest, False)],
        [(c.matter_label, label_w, True), (c.matter, rest, False)],
    ]
    rows += [[(k, label_w, True), (v, rest, False)] for k, v in c.extra_rows]
    if rng.random() < 0.5:
        rows.append([("备注", label_w, True), ("", rest, False)])
    row_h = s.body_px * max(1.7, rng.uniform(2.2, 2.6) * squeeze)
    y = s.table(x0, y, rows, row_h, s.body_style, s.value_style, outer_w=s.line_w + 1)

    # family members
    family_caption = rng.choice(("家庭主要成员情况", "家庭成员信息"))
    if c.family:
        y += s.mm(7 * squeeze)
        s.text((x0, y + s.body_px * 0.8), family_caption, body)
        y += s.body_px * 1.3
        y = s.table(
            x0, y, _family_rows(s, c.family, w), row_h, s.body_style, s.value_style, outer_w=s.line_w + 1
        )

    leading = s.body_px * max(1.5, rng.uniform(1.7, 1.9) * squeeze)
    # declaration + signature
    y += s.mm(10 * squeeze) + s.body_px
    s.text((x0, y), "申请人承诺：", body)
    y += leading
    y = s.paragraph(c.declaration, x0, y, w, body, leading, first_indent=2 * s.body_px)
    y += leading * 1.3
    _signature(s, rng, x0 + w * 0.5, y, "申请人签名：", body)
    y += leading
    s.text((x0 + w, y), format_date(c.apply_date, c.date_style), body, anchor="rs")

    # approval
    y += leading * 1.4
    s.text((x0, y), "审核意见：", body)
    y += leading
    y = s.paragraph(c.opinion, x0, y, w, body, leading, first_indent=2 * s.body_px)
    y += leading
    s.text((x0, y), f"经办人：{c.clerk}", body)
    y += leading * 1.2
    right = x0 + w - s.body_px * 1.5
    unit_box = s.text((right, y), c.unit_name, body, anchor="rs")
    y += leading
    date_box = s.text((right, y), format_date(c.approve_date, c.date_style), body, anchor="rs")

    if footer:
        s.text((s.width / 2, s.height - s.margin_bottom), footer, body, anchor="ms")
    return s, unit_box, date_box, y


def render_table_page(
    rng: random.Random, *, dpi: int, content: FormContent, seal: bool = False, footer: str | None = None
) -> tuple[Image.Image, SamplePage]:
    """Companion page: household members table and the list of submitted materials."""
    s = _Sheet(dpi, rng)
    body = s.font(s.body_style, s.body_px)
    x0 = s.margin_x
    w = s.width - 2 * s.margin_x
    y = _title(s, rng, rng.choice(("附表：家庭成员情况", "家庭成员及收入情况表")))
    s.text((x0, y), f"申请人：{content.person.name}", body)
    s.text((x0 + w, y), f"编号：{content.serial}", body, anchor="rs")
    y += s.body_px * 0.9
    extra = _family(rng, content.person, rng.randint(2, 4))
    members = list(content.family) + [m for m in extra if m[1] not in {f[1] for f in content.family}]
    row_h = s.body_px * rng.uniform(2.0, 2.3)
    y = s.table(x0, y, _family_rows(s, members, w), row_h, s.body_style, s.value_style, outer_w=s.line_w + 1)

    leading = s.body_px * rng.uniform(1.6, 1.8)
    y += s.mm(10) + s.body_px
    s.text((x0, y), "申请材料清单：", body)
    for i, item in enumerate(content.attachments, start=1):
        y += leading
        s.text((x0 + 2 * s.body_px, y), f"{i}.{item}", body)
    y += leading * 1.6
    s.text((x0, y), "以上情况属实，如有虚假，愿承担相应责任。", body)
    y += leading * 1.5
    _signature(s, rng, x0 + w * 0.5, y, "申请人签名：", body)
    y += leading
    date_box = s.text((x0 + w, y), format_date(content.apply_date, content.date_style), body, anchor="rs")
    if footer:
        s.text((s.width / 2, s.height - s.margin_bottom), footer, body, anchor="ms")
    if seal:
        d = s.mm(42)
        cx = round((date_box[0] + date_box[2]) / 2 + rng.uniform(0.15, 0.35) * d)
        cy = round(date_box[1] - s.body_px * rng.uniform(0.0, 1.0))
        s.seal_boxes.append(stamp_seal(s.img, rng, center=(cx, cy), dpi=dpi, unit_name=content.unit_name))
    return s.img, s.page("table")


def _card(s: _Sheet, rng: random.Random, x: float, y: float, cw: float, ch: float) -> None:
    s.draw.rounded_rectangle(
        (x, y, x + cw, y + ch),
        radius=round(cw * 0.04),
        fill=(236, 236, 236),
        outline=(120, 120, 120),
        width=s.line_w,
    )


def render_id_copy_page(
    rng: random.Random, *, dpi: int, person: Person, matter: str, footer: str | None = None
) -> tuple[Image.Image, SamplePage]:
    """A photocopy of both sides of the applicant's ID card, enlarged 1.5x as halls do."""
    s = _Sheet(dpi, rng)
    body = s.font(s.body_style, s.body_px)
    x0 = s.margin_x
    w = s.width - 2 * s.margin_x
    y = _title(s, rng, "居民身份证复印件")
    scale = 1.5
    cw, ch = s.mm(85.6 * scale), s.mm(54.0 * scale)
    cx0 = (s.width - cw) / 2
    card_px = s.pt(12.5)
    label_font = s.font("sans", card_px)
    value_font = s.font("sans", card_px)
    grey = (70, 70, 70)

    # front
    _card(s, rng, cx0, y, cw, ch)
    lx = cx0 + cw * 0.07
    vx = lx + card_px * 4.5
    row = ch * 0.14
    by = y + ch * 0.17
    s.text((lx, by), "姓名", label_font, fill=grey)
    s.text((vx, by), person.name, value_font)
    by += row
    s.text((lx, by), "性别", label_font, fill=grey)
    s.text((vx, by), person.sex, value_font)
    s.text((vx + card_px * 3.5, by), "民族", label_font, fill=grey)
    s.text((vx + card_px * 7.5, by), person.ethnicity, value_font)
    by += row
    b = person.birth_date
    s.text((lx, by), "出生", label_font, fill=grey)
    s.text((vx, by), f"{b.year}年{b.month}月{b.day}日", value_font)
    by += row
    s.text((lx, by), "住址", label_font, fill=grey)
    # the card prints the address in at most three lines, wrapped to balanced lengths
    addr_w = cw * 0.64 - (vx - cx0)
    n_lines = len(s.wrap(person.address, value_font, addr_w))
    per_line = math.ceil(len(person.address) / n_lines)
    for i in range(n_lines):
        part = person.address[i * per_line : (i + 1) * per_line]
        s.text((vx, by + i * card_px * 1.3), part, value_font)
    s.text((lx, y + ch * 0.9), "公民身份号码", label_font, fill=grey)
    s.text((lx + card_px * 7.5, y + ch * 0.9), person.id_number, value_font)
    # photo
    px0, py0 = cx0 + cw * 0.66, y + ch * 0.12
    pw, ph = cw * 0.28, ch * 0.62
    s.draw.rectangle((px0, py0, px0 + pw, py0 + ph), fill=(214, 214, 214))
    s.draw.ellipse((px0 + pw * 0.3, py0 + ph * 0.12, px0 + pw * 0.7, py0 + ph * 0.55), fill=(120, 120, 120))
    s.draw.chord(
        (px0 + pw * 0.1, py0 + ph * 0.58, px0 + pw * 0.9, py0 + ph * 1.4), 180, 360, fill=(120, 120, 120)
    )

    # back
    y2 = y + ch + s.mm(14)
    _card(s, rng, cx0, y2, cw, ch)
    ex, ey, er = cx0 + cw * 0.14, y2 + ch * 0.24, cw * 0.08
    s.draw.ellipse((ex - er, ey - er, ex + er, ey + er), outline=(110, 110, 110), width=s.line_w * 2)
    s.draw.polygon(
        [
            (ex + er * 0.45 * math.cos(a), ey + er * 0.45 * math.sin(a))
            for a in [-math.pi / 2 + k * 4 * math.pi / 5 for k in range(5)]
        ],
        fill=(110, 110, 110),
    )
    big = s.font("sans", s.pt(16))
    s.text((cx0 + cw * 0.58, y2 + ch * 0.22), "中华人民共和国", big, anchor="ms")
    s.text((cx0 + cw * 0.5, y2 + ch * 0.45), "居民身份证", s.font("sans", s.pt(22)), anchor="ms")
    issued = dt.date(rng.randint(2012, 2023), b.month, min(b.day, 28))
    years = 20 if (issued - b).days < 46 * 365 else 0
    until = f"{issued.year + years}.{issued.month:02d}.{issued.day:02d}" if years else "长期"
    s.text((cx0 + cw * 0.12, y2 + ch * 0.72), "签发机关", label_font, fill=grey)
    s.text((cx0 + cw * 0.12 + card_px * 5.5, y2 + ch * 0.72), f"{person.region.county}公安局", value_font)
    s.text((cx0 + cw * 0.12, y2 + ch * 0.86), "有效期限", label_font, fill=grey)
    s.text(
        (cx0 + cw * 0.12 + card_px * 5.5, y2 + ch * 0.86),
        f"{issued.year}.{issued.month:02d}.{issued.day:02d}-{until}",
        value_font,
    )

    # the applicant's annotation below the copy
    y = y2 + ch + s.mm(16)
    s.text((x0 + s.body_px * 2, y), f"此复印件仅用于办理{matter}，再复印无效。", body)
    y += s.body_px * 2.2
    _signature(s, rng, x0 + w * 0.5, y, "本人签名：", body)
    if footer:
        s.text((s.width / 2, s.height - s.margin_bottom), footer, body, anchor="ms")
    return s.img, s.page("id_copy")


def render_blank_page(
    rng: random.Random, *, dpi: int, label: str | None = None
) -> tuple[Image.Image, SamplePage]:
    """The back of a sheet: white paper, optionally a small faint page label (recorded as text)."""
    s = _Sheet(dpi, rng)
    if label:
        font = s.font("sans", s.pt(11))
        s.text((s.width / 2, s.height - s.margin_bottom), label, font, anchor="ms", fill=(150, 150, 150))
    return s.img, s.page("blank", blank=True)
