"""Synthetic but plausible identities: names, 公民身份号码 (GB 11643-1999), phones, addresses."""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass

__all__ = [
    "COMPOUND_SURNAMES",
    "ETHNICITIES",
    "REGIONS",
    "SURNAMES",
    "Person",
    "Region",
    "credit_code_check_char",
    "id_check_digit",
    "is_valid_id_number",
    "random_address",
    "random_birth_date",
    "random_credit_code",
    "random_name",
    "random_person",
    "random_phone",
    "valid_id_number",
]

# --- GB 11643-1999 -------------------------------------------------------------------------
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """The 18th character of a 公民身份号码: ISO 7064 MOD 11-2 over the first 17 digits."""
    if len(first17) != 17 or not first17.isascii() or not first17.isdigit():
        raise ValueError(f"expected the first 17 digits of an ID number, got {first17!r}")
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def is_valid_id_number(number: str) -> bool:
    """Length, digits, embedded birth date and check digit of an 18-character ID number."""
    if len(number) != 18 or not number[:17].isascii() or not number[:17].isdigit():
        return False
    try:
        dt.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return id_check_digit(number[:17]) == number[17]


@dataclass(frozen=True)
class Region:
    """A county-level division: 6-digit administrative code and its names."""

    code: str
    province: str
    city: str
    county: str

    @property
    def full_name(self) -> str:
        return f"{self.province}{self.city}{self.county}"


# Real county codes (GB/T 2260) of ordinary counties, so the numbers look right to a clerk.
REGIONS: tuple[Region, ...] = (
    Region("130123", "河北省", "石家庄市", "正定县"),
    Region("130132", "河北省", "石家庄市", "元氏县"),
    Region("130424", "河北省", "邯郸市", "成安县"),
    Region("140121", "山西省", "太原市", "清徐县"),
    Region("210224", "辽宁省", "大连市", "长海县"),
    Region("220122", "吉林省", "长春市", "农安县"),
    Region("230123", "黑龙江省", "哈尔滨市", "依兰县"),
    Region("320321", "江苏省", "徐州市", "丰县"),
    Region("320322", "江苏省", "徐州市", "沛县"),
    Region("330122", "浙江省", "杭州市", "桐庐县"),
    Region("330127", "浙江省", "杭州市", "淳安县"),
    Region("340121", "安徽省", "合肥市", "长丰县"),
    Region("340122", "安徽省", "合肥市", "肥东县"),
    Region("340123", "安徽省", "合肥市", "肥西县"),
    Region("350121", "福建省", "福州市", "闽侯县"),
    Region("360121", "江西省", "南昌市", "南昌县"),
    Region("370124", "山东省", "济南市", "平阴县"),
    Region("371326", "山东省", "临沂市", "平邑县"),
    Region("410122", "河南省", "郑州市", "中牟县"),
    Region("411721", "河南省", "驻马店市", "西平县"),
    Region("421022", "湖北省", "荆州市", "公安县"),
    Region("430121", "湖南省", "长沙市", "长沙县"),
    Region("440523", "广东省", "汕头市", "南澳县"),
    Region("450123", "广西壮族自治区", "南宁市", "隆安县"),
    Region("510121", "四川省", "成都市", "金堂县"),
    Region("530124", "云南省", "昆明市", "富民县"),
    Region("610122", "陕西省", "西安市", "蓝田县"),
    Region("620121", "甘肃省", "兰州市", "永登县"),
)

SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程"
    "苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛段雷侯龙史陶黎贺顾毛郝龚"
    "邵万钱严覃武戴莫孔向汤"
)
COMPOUND_SURNAMES = ("欧阳", "司马", "诸葛", "上官")
_GIVEN_MALE = "伟强磊军勇杰涛明超刚平辉鹏华飞鑫波斌宇浩凯健俊帆帅旭宁龙林国建志文斌海峰东晨阳振"
_GIVEN_FEMALE = "芳娜敏静丽艳娟霞秀英华慧巧美娅玲红梅琳雪婷颖倩洁佳燕欣怡萍兰凤月晶媛莉琴云丹桂"
_GIVEN_ANY = "子思嘉俊雨文晓春秋新永德立红金玉小建家明海"

ETHNICITIES: tuple[tuple[str, float], ...] = (
    ("汉", 0.88),
    ("回", 0.02),
    ("满", 0.02),
    ("壮", 0.02),
    ("蒙古", 0.01),
    ("苗", 0.01),
    ("土家", 0.01),
    ("彝", 0.01),
    ("侗", 0.01),
    ("瑶", 0.01),
)

_MOBILE_PREFIXES = tuple(
    str(p)
    for p in (
        *range(130, 140),
        150,
        151,
        152,
        153,
        155,
        156,
        157,
        158,
        159,
        166,
        173,
        175,
        176,
        177,
        178,
        *range(180, 190),
        191,
        198,
        199,
    )
)

_TOWNS = ("城关镇", "城南街道", "城北街道", "东关街道", "西城街道", "新城镇", "南关镇", "石桥镇", "永安镇")
_ROADS = ("建设路", "人民路", "解放路", "中山路", "新华街", "胜利路", "文化路", "幸福路", "团结路", "府前街")
_VILLAGES = ("王庄", "李家", "张湾", "东营", "西坡", "前进", "和平", "兴隆", "大石桥", "杨柳")


def random_name(rng: random.Random, sex: str) -> str:
    """A plausible Chinese name (surname + 1-2 given characters) for ``sex`` "男" or "女"."""
    surname = rng.choice(COMPOUND_SURNAMES) if rng.random() < 0.02 else rng.choice(SURNAMES)
    pool = _GIVEN_MALE if sex == "男" else _GIVEN_FEMALE
    if rng.random() < 0.35:
        return surname + rng.choice(pool)
    return surname + rng.choice(pool + _GIVEN_ANY) + rng.choice(pool)


def random_birth_date(
    rng: random.Random, *, min_age: int = 18, max_age: int = 80, today: dt.date = dt.date(2024, 6, 1)
) -> dt.date:
    lo = today.replace(year=today.year - max_age).toordinal()
    hi = today.replace(year=today.year - min_age).toordinal()
    return dt.date.fromordinal(rng.randint(lo, hi))


def valid_id_number(
    rng: random.Random, birth_date: dt.date, *, region_code: str | None = None, sex: str | None = None
) -> str:
    """An 18-digit 公民身份号码 with a valid check digit, the given birth date, a real county code
    (random unless ``region_code`` is given) and a sequence number whose parity matches ``sex``
    (odd for 男, even for 女)."""
    region = region_code if region_code is not None else rng.choice(REGIONS).code
    if len(region) != 6 or not region.isdigit():
        raise ValueError(f"region code must be 6 digits, got {region!r}")
    seq = rng.randint(0, 999)
    if sex is not None:
        want_odd = sex == "男"
        if (seq % 2 == 1) != want_odd:
            seq = seq + 1 if seq < 999 else seq - 1
    first17 = f"{region}{birth_date:%Y%m%d}{seq:03d}"
    return first17 + id_check_digit(first17)


def random_phone(rng: random.Random) -> str:
    """An 11-digit mainland mobile number with a real carrier prefix."""
    return rng.choice(_MOBILE_PREFIXES) + f"{rng.randint(0, 99_999_999):08d}"


def random_address(rng: random.Random, region: Region) -> str:
    """Province/city/county + town/street + number, as written on a 户口簿."""
    town = rng.choice(_TOWNS)
    if town.endswith("镇") and rng.random() < 0.5:
        tail = f"{rng.choice(_VILLAGES)}村{rng.randint(1, 12)}组{rng.randint(1, 99)}号"
    else:
        tail = f"{rng.choice(_ROADS)}{rng.randint(1, 399)}号"
    return f"{region.full_name}{town}{tail}"


_CREDIT_CHARSET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_CREDIT_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def credit_code_check_char(first17: str) -> str:
    """Check character of a 统一社会信用代码 (GB 32100-2015)."""
    total = sum(_CREDIT_CHARSET.index(c) * w for c, w in zip(first17, _CREDIT_WEIGHTS, strict=True))
    return _CREDIT_CHARSET[(31 - total % 31) % 31]


def random_credit_code(rng: random.Random, region: Region) -> str:
    """A 统一社会信用代码 for a company registered in ``region`` (valid check character)."""
    body = "".join(rng.choice(_CREDIT_CHARSET[:10] + "ABCDEFGH") for _ in range(8))
    org = body + rng.choice("0123456789X")
    first17 = "9" + "1" + region.code + org
    return first17 + credit_code_check_char(first17)


@dataclass(frozen=True)
class Person:
    name: str
    sex: str
    ethnicity: str
    birth_date: dt.date
    id_number: str
    phone: str
    address: str
    region: Region


def random_person(
    rng: random.Random,
    *,
    region: Region | None = None,
    sex: str | None = None,
    min_age: int = 18,
    max_age: int = 80,
) -> Person:
    region = region if region is not None else rng.choice(REGIONS)
    sex = sex if sex is not None else rng.choice(("男", "女"))
    names, weights = zip(*ETHNICITIES, strict=True)
    ethnicity = rng.choices(names, weights=weights)[0]
    birth = random_birth_date(rng, min_age=min_age, max_age=max_age)
    # Most people in a county hall were born there; some moved in.
    born_in = region if rng.random() < 0.8 else rng.choice(REGIONS)
    return Person(
        name=random_name(rng, sex),
        sex=sex,
        ethnicity=ethnicity,
        birth_date=birth,
        id_number=valid_id_number(rng, birth, region_code=born_in.code, sex=sex),
        phone=random_phone(rng),
        address=random_address(rng, region),
        region=region,
    )
