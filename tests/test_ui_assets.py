"""The staff UI's files (``ui/``) keep to the rules its CSP and the offline hall LAN impose: no
web address (no CDN, nothing fetched from elsewhere), no web fonts or imported style sheets, no
inline script or ``on…=`` handlers, no ``eval``; every module, script, style sheet and image
they name exists in ``ui/``. And the app serves them: ``/`` is ``index.html`` under the CSP, and
every file the page loads (the whole module graph) comes back 200 with the right type."""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath

import pytest
from fastapi.testclient import TestClient

from appliance.api import create_app
from tests.conftest import make_settings

UI = Path(__file__).resolve().parents[1] / "ui"
TEXT_SUFFIXES = {".html", ".css", ".js", ".mjs", ".md", ".json", ".svg", ".txt"}
FONT_SUFFIXES = {".woff", ".woff2", ".ttf", ".otf", ".eot"}
MODULE_SUFFIXES = {".js", ".mjs"}

WEB_URL = re.compile(r"https?://", re.IGNORECASE)
# import x from './a.js' / import {a,\n b} from '../b.js' / import './c.js' / export {x} from './d.js'
STATIC_IMPORT = re.compile(
    r"""^\s*(?:import|export)\b(?:[^'";]*?\bfrom)?\s*(['"])(?P<spec>[^'"]+)\1""", re.MULTILINE
)
DYNAMIC_IMPORT = re.compile(r"""\bimport\s*\(\s*(['"`])(?P<spec>[^'"`]+)\1""")
CSS_URL = re.compile(r"""url\(\s*(['"]?)(?P<ref>[^'")]+)\1\s*\)""", re.IGNORECASE)
EVAL = re.compile(r"(?<![\w.$])eval\s*\(|\bnew\s+Function\s*\(|\bset(?:Timeout|Interval)\s*\(\s*['\"`]")
HTML_SINKS = re.compile(r"\.(?:inner|outer)HTML\s*=|\binsertAdjacentHTML\s*\(|\bdocument\.write(?:ln)?\s*\(")


def ui_files() -> list[Path]:
    files = sorted(p for p in UI.rglob("*") if p.is_file())
    assert files, f"no UI files under {UI}"
    return files


def text_files(*suffixes: str) -> list[Path]:
    wanted = set(suffixes) or TEXT_SUFFIXES
    return [p for p in ui_files() if p.suffix in wanted]


def rel(path: Path) -> str:
    return path.relative_to(UI).as_posix()


def strip_js_comments(source: str) -> str:
    """Drop // and /* */ comments (outside strings, roughly: enough for these checks)."""
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.DOTALL)
    return re.sub(r"(?m)(^|[^:\\'\"])//.*$", r"\1", source)


class Tags(HTMLParser):
    """Every start tag with its attributes, and the text inside each <script>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.script_text: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = True
            self.script_text.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.script_text[-1] += data


def parse_html(path: Path) -> Tags:
    parser = Tags()
    parser.feed(path.read_text(encoding="utf-8"))
    parser.close()
    return parser


def html_refs(path: Path) -> list[str]:
    """The src= and href= values of an HTML file."""
    return [
        v for _tag, attrs in parse_html(path).tags for k, v in attrs.items() if k in ("src", "href") and v
    ]


def is_inline_or_fragment(ref: str) -> bool:
    return ref.startswith("#") or ref.startswith("data:")


def resolve(source: Path, ref: str) -> Path | None:
    """The file in ui/ that ``ref`` (relative to ``source``) names, or None when it points
    outside ui/. Query and fragment are ignored; a leading / means the root of ui/."""
    path = ref.split("#", 1)[0].split("?", 1)[0]
    base = UI if path.startswith("/") else source.parent
    target = (base / path.lstrip("/")).resolve()
    return target if target.is_relative_to(UI.resolve()) else None


# --- the files -------------------------------------------------------------------------------------
def test_no_web_address_anywhere_in_ui() -> None:
    found = []
    for path in text_files():
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if WEB_URL.search(line):
                found.append(f"{rel(path)}:{n}: {line.strip()}")
    assert found == [], "assets must be served by the app (no CDN, no web URL):\n" + "\n".join(found)


def test_no_protocol_relative_or_script_urls_in_html() -> None:
    bad = [
        f"{rel(p)}: {ref}"
        for p in text_files(".html")
        for ref in html_refs(p)
        if ref.startswith("//") or ref.lower().startswith("javascript:")
    ]
    assert bad == []


def test_no_font_files_and_no_imported_or_external_style_sheets() -> None:
    fonts = [rel(p) for p in ui_files() if p.suffix.lower() in FONT_SUFFIXES]
    assert fonts == [], "no web fonts: styles.css uses the system CJK font stack"
    problems = []
    for path in text_files(".css", ".html", ".js", ".mjs"):
        text = path.read_text(encoding="utf-8")
        if path.suffix == ".css" and re.search(r"@import\b", text):
            problems.append(f"{rel(path)}: @import")
        if re.search(r"@font-face\b", text):
            problems.append(f"{rel(path)}: @font-face")
        for suffix in FONT_SUFFIXES:
            if re.search(rf"[\w/-]{re.escape(suffix)}\b", text, re.IGNORECASE):
                problems.append(f"{rel(path)}: references a {suffix} file")
    for path in text_files(".css"):
        for m in CSS_URL.finditer(path.read_text(encoding="utf-8")):
            ref = m.group("ref").strip()
            if ref.startswith("data:"):
                continue
            target = resolve(path, ref)
            if target is None or not target.is_file():
                problems.append(f"{rel(path)}: url({ref}) is not a file in ui/")
    for path in text_files(".html"):
        for tag, attrs in parse_html(path).tags:
            if tag == "link" and (attrs.get("rel") or "").lower() == "stylesheet":
                href = attrs.get("href") or ""
                target = resolve(path, href)
                if target is None or not target.is_file():
                    problems.append(f"{rel(path)}: style sheet {href!r} is not a file in ui/")
    assert problems == []


def test_html_has_no_inline_script_handlers_or_style_attributes() -> None:
    problems = []
    for path in text_files(".html"):
        parsed = parse_html(path)
        for tag, attrs in parsed.tags:
            for name in attrs:
                if name.lower().startswith("on"):
                    problems.append(f"{rel(path)}: <{tag} {name}=…> (inline handler)")
                if name.lower() == "style":
                    problems.append(f"{rel(path)}: <{tag} style=…> (inline style)")
            if tag == "script" and not attrs.get("src"):
                problems.append(f"{rel(path)}: <script> without src (inline script)")
        problems += [f"{rel(path)}: inline script text" for text in parsed.script_text if text.strip()]
        if re.search(r"<style\b", path.read_text(encoding="utf-8"), re.IGNORECASE):
            problems.append(f"{rel(path)}: <style> element (inline style sheet)")
    assert problems == [], "the CSP forbids inline script and style:\n" + "\n".join(problems)


def test_scripts_do_not_eval_or_parse_html() -> None:
    problems = []
    for path in text_files(*MODULE_SUFFIXES):
        code = strip_js_comments(path.read_text(encoding="utf-8"))
        problems += [
            f"{rel(path)}: {m.group(0)!r} (eval-like; the CSP forbids it)" for m in EVAL.finditer(code)
        ]
        if path.parent.name != "tests":
            problems += [
                f"{rel(path)}: {m.group(0)!r} (parses a string as HTML)" for m in HTML_SINKS.finditer(code)
            ]
    assert problems == []


def module_imports(path: Path) -> list[str]:
    code = strip_js_comments(path.read_text(encoding="utf-8"))
    return [m.group("spec") for rx in (STATIC_IMPORT, DYNAMIC_IMPORT) for m in rx.finditer(code)]


def test_every_import_src_and_href_names_a_file_in_ui() -> None:
    checked = 0
    problems = []
    for path in text_files(*MODULE_SUFFIXES):
        for spec in module_imports(path):
            if spec.startswith("node:") and path.parent.name == "tests":
                continue  # node's own modules, for the unit tests run by node
            if not spec.startswith(("./", "../")):
                problems.append(f"{rel(path)}: import {spec!r} is not a relative path (no packages, no URLs)")
                continue
            target = resolve(path, spec)
            checked += 1
            if target is None or not target.is_file():
                problems.append(f"{rel(path)}: import {spec!r} is not a file in ui/")
    for path in text_files(".html"):
        for ref in html_refs(path):
            if is_inline_or_fragment(ref):
                continue
            target = resolve(path, ref)
            checked += 1
            if target is None or not target.is_file():
                problems.append(f"{rel(path)}: {ref!r} is not a file in ui/")
    assert problems == []
    assert checked >= 20, f"only {checked} references found: is the import pattern still right?"


def test_the_reference_scanner_sees_imports_of_every_shape(tmp_path: Path) -> None:
    sample = (
        "import { a,\n  b } from './one.js';\nimport * as c from \"../two.js\";\nimport './three.js';\n"
        "export { d } from './four.js';\nconst e = await import('./five.js');\n"
        "// import nothing from './comment.js';\nexport const f = 'from';\n"
    )
    module = tmp_path / "m.js"
    module.write_text(sample, encoding="utf-8")
    assert module_imports(module) == ["./one.js", "../two.js", "./three.js", "./four.js", "./five.js"]
    assert EVAL.search("x = eval('1')") and EVAL.search("new Function('a', 'b')")
    assert not EVAL.search("page.evaluate(x); retrieval(y)")
    assert HTML_SINKS.search("el.innerHTML = s") and not HTML_SINKS.search("// never innerHTML")


# --- served by the app -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TestClient]:
    settings = make_settings(tmp_path_factory.mktemp("assets") / "data", ocr={"engine": "none"})
    with TestClient(create_app(settings), base_url="https://testserver") as c:
        yield c


def served_path(source: Path, ref: str) -> str:
    target = resolve(source, ref)
    assert target is not None, ref
    return "/" + PurePosixPath(target.relative_to(UI.resolve()).as_posix()).as_posix()


def test_root_is_index_html_under_the_csp(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    assert r.text == (UI / "index.html").read_text(encoding="utf-8")
    directives = {
        d.strip().split()[0]: d.strip().split()[1:]
        for d in r.headers["content-security-policy"].split(";")
        if d.strip()
    }
    assert directives["default-src"] == ["'self'"]
    assert directives["script-src"] == ["'self'"]
    assert directives["style-src"] == ["'self'"]
    assert directives["connect-src"] == ["'self'"]
    csp = r.headers["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert r.headers["x-content-type-options"] == "nosniff"


def test_every_asset_of_the_page_is_served(client: TestClient) -> None:
    """index.html's style sheet and script, and every module app.js imports (transitively):
    modules must come with a JavaScript type (nosniff), or the browser refuses them."""
    index = UI / "index.html"
    todo: list[tuple[Path, str]] = [
        (index, ref) for ref in html_refs(index) if not is_inline_or_fragment(ref)
    ]
    assert todo, "index.html references nothing?"
    seen: set[str] = set()
    types = {".js": "javascript", ".mjs": "javascript", ".css": "text/css", ".html": "text/html"}
    while todo:
        source, ref = todo.pop()
        path = served_path(source, ref)
        if path in seen:
            continue
        seen.add(path)
        r = client.get(path)
        assert r.status_code == 200, (path, r.status_code)
        suffix = PurePosixPath(path).suffix
        if suffix in types:
            assert types[suffix] in r.headers["content-type"], (path, r.headers["content-type"])
        assert "default-src 'self'" in r.headers["content-security-policy"], path
        local = UI / path.lstrip("/")
        assert r.content == local.read_bytes(), path
        if suffix in MODULE_SUFFIXES:
            todo += [(local, spec) for spec in module_imports(local)]
    modules = {p for p in seen if p.endswith(".js")}
    assert {"/app.js", "/styles.css", "/api.js", "/screens/record.js", "/charts.js"} <= seen, sorted(seen)
    assert len(modules) >= 20, sorted(modules)


def test_files_outside_ui_and_missing_files_are_not_served(client: TestClient) -> None:
    assert client.get("/no-such-file.js").status_code == 404
    for sneaky in ("/../pyproject.toml", "/%2e%2e/pyproject.toml", "/screens/../../pyproject.toml"):
        r = client.get(sneaky)
        assert r.status_code == 404 or "[build-system]" not in r.text, sneaky
