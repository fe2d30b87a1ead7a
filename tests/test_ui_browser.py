"""The staff UI in a real browser against the real service: ``hall serve`` (watcher, OCR worker,
API, UI) on a loopback port and a headless Chromium at 1366×768 in Chinese.

One server and one browser for the module; each test opens its own browser context (its own
cookies). A full-page screenshot of every screen lands in ``artifacts/screenshots/``.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from playwright.sync_api import BrowserContext, Page, expect, sync_playwright

from appliance import record_metadata
from appliance.context import open_context
from appliance.samples import generate_documents
from appliance.samples.records import add_records, archive_metadata
from appliance.samples.truth import SampleDocument
from appliance.settings import Settings
from sync.objectstore import FolderObjectStore, blob_key
from sync.package import record_blob_refs
from tests.browser_harness import (
    CHROMIUM,
    VIEWPORT,
    Account,
    Observed,
    add_user,
    api_get,
    job_timeline,
    screenshot,
    session_cookie,
    wait_healthy,
)
from tests.conftest import make_settings
from tests.serve_harness import HALL, ServeProcess, wait_until_done
from tests.transfer_harness import wait_for

pytestmark = pytest.mark.slow

SERVE_ENV = {"HALL_INTAKE__SETTLE_SECONDS": "0.5", "HALL_PIPELINE__WORKERS": "1"}
CLERK = Account("clerk.wang", "Clerk-pass-2026!", "clerk", "王办事")
SUPERVISOR = Account("super.li", "Super-pass-2026!", "supervisor", "李审核")
TECHNICIAN = Account("tech.zhao", "Tech-pass-2026!", "technician", "赵技术")
# ArchivalSettings defaults: fonds 0001, category WS, retention D30, department ZWFW.
ARCHIVAL_CODE = re.compile(r"^\d{4}-WS·\d{4}-D30-ZWFW-\d{4}$")
SHORT = 15_000  # ms: a screen, a dialog, an API round trip
OCR = 90_000  # ms: landing -> stored (model loading on the first job included)


@dataclass
class Hall:
    serve: ServeProcess
    settings: Settings
    inbox: Path
    scans: Path
    doc: SampleDocument
    observed: Observed
    new_context: Callable[[], BrowserContext]
    state: dict[str, Any] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.serve.url

    def drop_scan(self) -> tuple[float, float]:
        """Drop the generated scan like a scanner does (temporary name, then rename); returns
        the monotonic and the wall-clock time of the rename."""
        data = (self.scans / self.doc.filename).read_bytes()
        tmp = self.inbox / f".{self.doc.filename}.part"
        tmp.write_bytes(data)
        tmp.rename(self.inbox / self.doc.filename)
        return time.monotonic(), time.time()

    def record_id(self) -> str:
        """The stored record of the scan (dropping it first when the counter-flow test did not)."""
        if "record_id" not in self.state:
            self.drop_scan()
            wait_until_done(self.settings.data_dir, 1, timeout=OCR / 1000, serve=self.serve)
            out = hall_cli(self.settings.data_dir, "search", "--json", self.doc.fields["id_number"])
            self.state["record_id"] = json.loads(out)[0]["record_id"]
        return str(self.state["record_id"])


def hall_cli(data_dir: Path, *args: str) -> str:
    done = subprocess.run(
        [HALL, "--data-dir", str(data_dir), *args], capture_output=True, check=True, timeout=60
    )
    return done.stdout.decode()


@pytest.fixture(scope="module")
def hall(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hall]:
    tmp = tmp_path_factory.mktemp("ui")
    settings = make_settings(tmp / "data")
    for account in (CLERK, SUPERVISOR, TECHNICIAN):
        add_user(settings.data_dir, account)
    scans = tmp / "scans"
    doc = generate_documents(
        scans, 1, seed=7, formats=("jpeg",), include_blank=False, include_upside_down=False
    )[0]
    serve = ServeProcess(settings.data_dir, tmp / "serve.log", SERVE_ENV)
    serve.start()
    try:
        print(f"\nhall serve healthy after {wait_healthy(serve):.1f}s at {serve.url}")
        observed = Observed(serve.url)
        # Every fresh page load asks for the session first; logged out, that is a 401.
        observed.expect_status(401, "/api/v1/auth/session")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
            contexts: list[BrowserContext] = []

            def new_context() -> BrowserContext:
                # The browser's clock zone is the box's (the dashboard's hours are the box's).
                context = browser.new_context(viewport=VIEWPORT, locale="zh-CN")
                context.set_default_timeout(SHORT)
                observed.attach(context)
                contexts.append(context)
                return context

            try:
                yield Hall(
                    serve=serve,
                    settings=settings,
                    inbox=settings.drop_path(settings.drop_folders[0]),
                    scans=scans,
                    doc=doc,
                    observed=observed,
                    new_context=new_context,
                )
            finally:
                for context in contexts:
                    context.close()
                browser.close()
    finally:
        status = serve.stop()
    assert status == 0, serve.log()


@pytest.fixture
def page(hall: Hall) -> Iterator[Page]:
    context = hall.new_context()
    yield context.new_page()
    context.close()


def log_in(page: Page, hall: Hall, account: Account) -> None:
    page.goto(f"{hall.url}/")
    expect(page.locator("#login-username")).to_be_visible()
    page.fill("#login-username", account.username)
    page.fill("#login-password", account.password)
    page.get_by_role("button", name="登录", exact=True).click()
    expect(page.locator(".header-tools .user-name")).to_have_text(account.display_name)
    expect(page.locator(".header-tools .user-role")).to_have_text(
        {"clerk": "办事员", "supervisor": "审核员", "technician": "技术员"}[account.role]
    )


def browser_fetch(page: Page, hall: Hall, path: str, expected: int) -> int:
    """The status of a same-origin GET made by the page itself (with its session cookie); an
    ``expected`` error status is registered, so its console line is not counted as an error."""
    if expected >= 400:
        hall.observed.expect_status(expected, path)
    script = """(p) => fetch(p, {credentials: 'same-origin'})
                   .then(async (r) => { await r.arrayBuffer(); return r.status; })"""
    return int(page.evaluate(script, path))


# --- 1. the counter flow ---------------------------------------------------------------------------
def test_counter_flow_scan_to_archive_to_search(hall: Hall, page: Page) -> None:
    shot = "counter_flow"
    doc = hall.doc
    name, address = doc.fields["name"], doc.fields["address"]
    log_in(page, hall, CLERK)
    expect(page).to_have_url(re.compile(r"#/intake$"))  # the clerk's landing screen
    expect(page.locator(".live-status.live-live")).to_be_visible()  # the event stream is open
    expect(page.locator(".empty-cards")).to_be_visible()
    screenshot(page, shot, "1-intake-empty")

    landed, landed_wall = hall.drop_scan()
    card = page.locator(".intake-card")
    expect(card).to_have_count(1, timeout=SHORT)
    card_s = time.monotonic() - landed
    page.wait_for_function(
        "() => { const i = document.querySelector('.intake-card .card-img');"
        " return Boolean(i && !i.hidden && i.complete && i.naturalWidth > 0); }",
        timeout=SHORT,
        polling=50,
    )
    thumb_s = time.monotonic() - landed
    expect(card.locator(".card-counter")).to_have_text("1号窗口")
    screenshot(page, shot, "2-intake-preview")
    expect(card).to_have_class(re.compile(r"\bstate-stored\b"), timeout=OCR)
    stored_s = time.monotonic() - landed
    print(f"landing -> card {card_s:.2f}s, -> thumbnail shown {thumb_s:.2f}s, -> stored {stored_s:.2f}s")
    expect(card.locator(".card-state")).to_contain_text("已入库（1 页）")
    # The queue counts follow the card (sent with the job's event, not up to 5 s later).
    expect(page.locator(".queue-counts .count-stored dd")).to_have_text("1", timeout=2_000)
    expect(page.locator(".queue-counts .count-depth dd")).to_have_text("0", timeout=2_000)
    server = job_timeline(hall.settings.data_dir, str(card.get_attribute("data-job")))
    print(
        "server side after the rename: "
        + ", ".join(f"{k} {v - landed_wall:+.2f}s" for k, v in sorted(server.items(), key=lambda kv: kv[1]))
    )
    screenshot(page, shot, "3-intake-stored")

    card.get_by_role("link", name="打开档案").click()
    expect(page).to_have_url(re.compile(r"#/records/[0-9a-f]+$"))
    record_id = page.url.rsplit("/", 1)[1]
    hall.state["record_id"] = record_id
    expect(page.locator(".record-header .badge")).to_have_text("草稿")
    ocr_lines = page.locator(".record-text .ocr-line")
    expect(ocr_lines.filter(has_text=name)).to_have_count(1)
    expect(page.locator(".viewer-img")).to_have_js_property("complete", True)
    expect(page.locator(".viewer-overlay polygon.ocr-box")).to_have_count(ocr_lines.count())
    # The form is pre-filled with OCR suggestions, marked until accepted or edited.
    for field_name, truth in (
        ("title", doc.fields["title"]),
        ("applicant", name),
        ("id_number", doc.fields["id_number"]),
        ("phone", doc.fields["phone"]),
        ("date", doc.fields["apply_date"]),
    ):
        box = page.locator(f"#f-{field_name}")
        expect(box).to_have_value(truth)
        expect(box).to_have_class(re.compile(r"\bis-suggested\b"))
    expect(page.locator(".pending-note")).to_be_visible()
    screenshot(page, shot, "4-record-draft")

    # Correct the title, save (the edited field is no longer a suggestion), then confirm.
    corrected = f"{doc.fields['title']}（{name}）"
    page.fill("#f-title", corrected)
    expect(page.locator("#f-title")).not_to_have_class(re.compile(r"\bis-suggested\b"))
    expect(page.locator(".dirty-note")).to_be_visible()
    page.get_by_role("button", name="保存", exact=True).click()
    expect(page.locator(".toast-success")).to_have_text(re.compile("已保存"))
    expect(page.locator(".dirty-note")).to_be_hidden()

    page.get_by_role("button", name="确认归档", exact=True).click()
    dialog = page.locator("dialog[open]")
    expect(dialog.locator(".dialog-title")).to_have_text("有未采纳的 OCR 建议")
    screenshot(page, shot, "5-pending-suggestions")
    dialog.get_by_role("button", name="全部采纳").click()
    expect(dialog.locator(".dialog-title")).to_have_text("确认归档？")
    dialog.get_by_role("button", name="确认归档").click()
    expect(dialog.locator(".dialog-title")).to_have_text("已归档", timeout=SHORT)
    code = dialog.locator(".big-code").inner_text().strip()
    assert ARCHIVAL_CODE.match(code), code
    screenshot(page, shot, "6-archived-code")
    dialog.get_by_role("button", name="确定").click()
    # 已移交 once the service's background transfer reached the (local) archive
    expect(page.locator(".record-header .badge")).to_have_text(re.compile("^(已归档|已移交)$"))
    expect(page.locator(".record-header .code-pill")).to_have_text(code)
    expect(page.locator("#f-archival_code")).to_have_value(code)
    expect(page.locator("#f-title")).to_have_value(corrected)
    screenshot(page, shot, "7-record-confirmed")
    hall.state["archival_code"] = code

    # Search for a fragment of the address (words on the page); the hit opens at its line.
    fragment = address[address.index("县") + 1 :][:5]
    assert len(fragment) == 5 and re.fullmatch(r"[\u4e00-\u9fff]+", fragment), fragment
    page.get_by_role("link", name="检索", exact=True).click()
    box = page.locator("#search-box")
    expect(box).to_be_focused()
    box.fill(fragment)
    box.press("Enter")
    hit = page.locator(".hits .hit")
    expect(hit).to_have_count(1)
    expect(hit.locator(".hit-code")).to_have_text(code)
    expect(hit.locator(".hit-title")).to_have_text(corrected)
    expect(hit.locator(".hit-snippet mark").first).to_be_visible()
    marked = "".join(hit.locator(".hit-snippet mark").all_inner_texts())
    assert marked == fragment, (marked, fragment)
    expect(page.locator(".search-meta")).to_contain_text("找到 1 件")
    screenshot(page, shot, "8-search-hit")

    hit.locator("a.hit-link").click()
    expect(page).to_have_url(re.compile(rf"#/records/{record_id}\?search_id=\d+&page=0&line=\d+$"))
    line_no = int(page.url.rsplit("=", 1)[1])
    active = page.locator(".record-text .ocr-line.active")
    expect(active).to_have_count(1)
    expect(active).to_contain_text(fragment)
    expect(active).to_have_attribute("data-index", str(line_no))
    expect(page.locator(f".viewer-overlay polygon.ocr-box.active[data-index='{line_no}']")).to_have_count(1)
    expect(page.get_by_role("link", name="← 返回检索结果")).to_be_visible()
    screenshot(page, shot, "9-record-at-hit")

    # What the box persisted, through the CLI and the API.
    hits = json.loads(hall_cli(hall.settings.data_dir, "search", "--json", name))
    mine = [h for h in hits if h["record_id"] == record_id]
    assert mine and mine[0]["archival_code"] == code and mine[0]["status"] in ("confirmed", "transferred"), (
        hits
    )
    status, rec = api_get(hall.url, f"/records/{record_id}", session_cookie(page.context, hall.url))
    assert status == 200, rec
    assert rec["status"] in ("confirmed", "transferred") and rec["archival_code"] == code
    assert rec["metadata"]["title"] == corrected
    assert rec["metadata"]["applicant"] == name
    assert rec["metadata"]["phone"] == doc.fields["phone"]


# --- 2. roles --------------------------------------------------------------------------------------
def test_roles_technician_sees_no_content_supervisor_sees_dashboard_and_audit(hall: Hall, page: Page) -> None:
    shot = "roles"
    record_id = hall.record_id()

    log_in(page, hall, TECHNICIAN)
    expect(page).to_have_url(re.compile(r"#/device$"))
    nav = page.locator("nav.nav")
    expect(nav.get_by_role("link", name="检索")).to_have_count(0)
    expect(nav.get_by_role("link", name="设备")).to_be_visible()
    expect(page.locator(".screen-device")).to_be_visible()
    screenshot(page, shot, "1-technician-device")
    page.goto(f"{hall.url}/#/records/{record_id}")
    expect(page.locator("#app-main .notice")).to_have_text("您的角色无权查看此页面。")
    expect(page.locator(".record-text, .viewer-img, .meta-form")).to_have_count(0)
    screenshot(page, shot, "2-technician-record-forbidden")
    for path in (
        f"/api/v1/records/{record_id}",
        f"/api/v1/records/{record_id}/pages/0/image?kind=thumbnail",
        f"/api/v1/search?q={quote(hall.doc.fields['name'])}",
        "/api/v1/records",
        "/api/v1/dashboard",
        "/api/v1/audit",
    ):
        assert browser_fetch(page, hall, path, 403) == 403, path
    assert browser_fetch(page, hall, "/api/v1/queue", 200) == 200
    page.goto(f"{hall.url}/#/intake")
    expect(page.locator(".screen-intake .notice")).to_have_text("您的角色只能查看队列数量。")
    expect(page.locator(".intake-card")).to_have_count(0)
    expect(page.locator(".queue-counts .count-depth")).to_be_visible()
    screenshot(page, shot, "3-technician-intake-counts")
    page.context.clear_cookies()

    log_in(page, hall, SUPERVISOR)
    page.get_by_role("link", name="统计", exact=True).click()
    expect(page.locator(".dash-card")).to_have_count(10)
    charts = page.locator("svg.chart-svg")
    expect(charts.first).to_be_visible()
    drawn = page.evaluate(
        """() => [...document.querySelectorAll('svg.chart-svg')].filter((svg) =>
             [...svg.querySelectorAll('rect.chart-bar')].some((r) => Number(r.getAttribute('height')) > 0)
             || [...svg.querySelectorAll('path.chart-line')].some((p) => /\\d/.test(p.getAttribute('d')))
           ).length"""
    )
    print(f"dashboard: {charts.count()} SVG charts, {drawn} with data drawn")
    assert drawn >= 1
    expect(
        page.locator(".dash-card").filter(has_text="今日每小时页数").locator("rect.chart-bar")
    ).to_have_count(24)
    screenshot(page, shot, "4-supervisor-dashboard")

    page.get_by_role("link", name="审计", exact=True).click()
    rows = page.locator(".audit-list tbody tr")
    expect(rows.first).to_be_visible()
    assert rows.count() >= 5
    # Every action is shown in Chinese (an untranslated one would show its code, e.g. users.create).
    actions = page.locator(".audit-list tbody td:nth-child(4)").all_inner_texts()
    codes = page.locator(".audit-list tbody td:nth-child(4) span").evaluate_all(
        "(els) => els.map((e) => e.title)"
    )
    assert "users.create" in codes and "auth.login" in codes, codes
    untranslated = [a for a in actions if re.fullmatch(r"[a-z_.]+", a.strip())]
    assert untranslated == [], untranslated
    page.get_by_role("button", name="验证审计链").click()
    result = page.locator(".verify-result .notice")
    expect(result).to_have_class(re.compile(r"\bnotice-ok\b"))
    expect(result).to_contain_text("审计链完整。")
    screenshot(page, shot, "5-supervisor-audit-verified")


# --- 3. session ------------------------------------------------------------------------------------
def test_a_package_the_archive_rejected_shows_the_failed_checks_on_the_record(hall: Hall, page: Page) -> None:
    """The archive's 四性检测 fails one item; the clerk sees which, in Chinese, on the record."""
    ctx = open_context(hall.settings)
    try:
        rec = add_records(ctx, 1, seed=31, valid_images=True)[0]
        wait_for(
            lambda: ctx.conn.execute(
                "SELECT COUNT(*) FROM blob_outbox WHERE record_id=?", (rec.record_id,)
            ).fetchone()[0] == 0,
            30, "the draft's files shipped by the running service",
        )  # fmt: skip
        # The archive's copy of the master is damaged after shipping: the package must fail blob_hash.
        master = record_blob_refs(ctx.conn, rec.record_id)[0]
        objects = FolderObjectStore(hall.settings.local_archive_dir / "objects")
        objects.put(blob_key(hall.settings.hall_id, master), b"damaged on the archive's disk")
        record_metadata.edit(ctx.store, hall.settings, rec.record_id, archive_metadata(rec), actor="user:t")
        record_metadata.confirm(ctx.store, hall.settings, rec.record_id, actor="user:t")
        rejected = "SELECT COUNT(*) FROM transfer_outbox WHERE state='rejected' AND record_id=?"
        wait_for(lambda: ctx.conn.execute(rejected, (rec.record_id,)).fetchone()[0] == 1, 30, "the rejection")
    finally:
        ctx.close()
    log_in(page, hall, CLERK)
    page.goto(f"{hall.url}/#/records/{rec.record_id}")
    note = page.locator("[data-transfer=rejected]")
    expect(note).to_be_visible()
    expect(note).to_contain_text("档案馆退回了本件")
    expect(note.locator(".transfer-failed li", has_text="完整性 · 文件哈希校验")).to_have_count(1)
    screenshot(page, "transfer", "rejected-record")


def test_session_logout_ends_it_and_wrong_password_is_refused(hall: Hall, page: Page) -> None:
    shot = "session"
    log_in(page, hall, CLERK)
    cookie = session_cookie(page.context, hall.url)
    assert api_get(hall.url, "/auth/session", cookie)[0] == 200
    page.get_by_role("button", name="退出", exact=True).click()
    expect(page).to_have_url(re.compile(r"#/login\?loggedout=1$"))
    expect(page.locator("#login-username")).to_be_visible()
    expect(page.locator(".login-form .notice-info")).to_have_text("您已退出登录。")
    expect(page.locator(".header-tools .user-name")).to_have_count(0)
    screenshot(page, shot, "1-logged-out")
    for path in ("/auth/session", "/records", "/queue"):
        status, body = api_get(hall.url, path, cookie)
        assert status == 401 and body["detail"]["code"] == "not_logged_in", (path, status, body)
    # The old cookie is not coming back: the browser dropped it too.
    assert [c for c in page.context.cookies(hall.url) if c["value"] == cookie] == []

    hall.observed.expect_status(401, "/api/v1/auth/login")
    page.fill("#login-username", CLERK.username)
    page.fill("#login-password", "not-the-password")
    page.get_by_role("button", name="登录", exact=True).click()
    message = page.locator(".login-form .form-message")
    expect(message).to_have_text("用户名或密码错误")
    expect(page.locator("#login-password")).to_have_value("")
    expect(page).to_have_url(re.compile(r"#/login"))
    screenshot(page, shot, "2-wrong-password")


# --- 4. offline / CSP ------------------------------------------------------------------------------


def test_offline_same_origin_only_and_no_console_errors(hall: Hall, page: Page) -> None:
    response = page.goto(f"{hall.url}/")
    assert response is not None and response.ok
    csp = response.headers["content-security-policy"]
    assert "default-src 'self'" in csp and "script-src 'self'" in csp, csp
    expect(page.locator("#login-username")).to_be_visible()
    # A CSP violation would be reported as a console error; check the event too.
    violations = page.evaluate(
        """() => new Promise((resolve) => {
             const seen = [];
             document.addEventListener('securitypolicyviolation', (e) => seen.push(e.violatedDirective));
             setTimeout(() => resolve(seen), 500);
           })"""
    )
    assert violations == []

    obs = hall.observed
    print(f"browser made {len(obs.urls)} requests; console errors: {len(obs.console_errors)}")
    for text in obs.console_errors:
        print("  console:", text)
    assert obs.urls, "the observer saw no request"
    assert obs.foreign_urls() == [], obs.foreign_urls()
    # Chromium logs every non-2xx fetch as an error: only the answers provoked on purpose.
    assert obs.unexpected_console_errors() == [], obs.console_errors
    # Only the event stream is cut off (by leaving the intake screen or closing the page).
    cut = [
        f for f in obs.failed if not re.match(rf"GET {re.escape(hall.url)}/api/v1/events\b.*ERR_ABORTED", f)
    ]
    assert cut == [], obs.failed
