"""``hall doctor``: the self-test a technician runs before leaving a hall (and after an update).

Each check says pass or fail, what it measured and, when it fails, what to do. The checks are in
:mod:`provisioning.doctor_checks`; this module runs them in order and reports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from appliance.settings import Settings
from provisioning import doctor_checks as checks

Check = Callable[[Settings], str]

# name, zh-CN title, function: cheap local checks first, the network last.
CHECKS: tuple[tuple[str, str, Check], ...] = (
    ("keys", "密钥文件", checks.keys),
    ("disk", "磁盘空间", checks.disk),
    ("drop_folders", "扫描投放目录", checks.drop_folders),
    ("native", "图像处理模块", checks.native),
    ("ocr", "文字识别模型", checks.ocr),
    ("replica", "数据库副本", checks.replica),
    ("archive", "档案馆连接与注册", checks.archive),
    ("transfer", "测试档案移交与回执", checks.transfer),
)
NAMES = tuple(name for name, _, _ in CHECKS)


@dataclass(frozen=True)
class Outcome:
    name: str
    title: str
    passed: bool
    measured: str
    fix: str | None
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def run(settings: Settings, only: Sequence[str] = (), skip: Sequence[str] = ()) -> list[Outcome]:
    out = []
    for name, title, check in CHECKS:
        if (only and name not in only) or name in skip:
            continue
        t0 = time.monotonic()
        try:
            measured, passed, fix = check(settings), True, None
        except checks.CheckFailed as e:
            measured, passed, fix = e.measured, False, e.fix
        except Exception as e:  # a check that crashes is a failed check, reported with its cause
            measured, passed = f"{type(e).__name__}: {e}"[:400], False
            fix = "see the message; run the check again after fixing its cause"
        out.append(Outcome(name, title, passed, measured, fix, round(time.monotonic() - t0, 2)))
    return out
