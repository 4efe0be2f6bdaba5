"""`r1f report`: one self-contained HTML file, rendered in headless Chromium (Debian's `chromium` driven by
Playwright's Python package; never a downloaded browser): every plot loads, nothing goes to the console.

The screenshot is kept in tests-artifacts/report.png (and docs/report.png with R1F_UPDATE_DOCS=1).
"""
from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from catalogs import Catalog
from catalogs.ingest import IngestOptions, ingest

from tests.catalogs.helpers import write_generations

from .test_publish import build_catalog, run_r1f

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "tests-artifacts"
PLOTS = 7
# Names a user gives (source, model, domain) that would run script in the page if they were inserted as markup.
HOSTILE = ("<script>alert(1)</script>", '"><img src=x onerror=alert(2)>', "'><svg onload=alert(3)>")


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> Catalog:
    return build_catalog(tmp_path_factory.mktemp("report"))


def render(page_html: Path, screenshot: Path) -> dict:
    """Open the report in headless Chromium; what loaded, what the console said, any dialog a script opened, the
    page's text and how many active elements (script, svg, iframe, object, embed) it has; a full-page screenshot."""
    from playwright.sync_api import sync_playwright

    messages: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
            "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: messages.append(f"{m.type}: {m.text}") if m.type in ("error", "warning")
                    else None)
            page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
            dialogs: list[str] = []
            page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
            requests: list[str] = []
            page.on("request", lambda r: requests.append(r.url))
            page.goto(page_html.as_uri(), wait_until="load")
            images = page.eval_on_selector_all(
                "img", "els => els.map(e => ({alt: e.alt, complete: e.complete, w: e.naturalWidth, "
                       "h: e.naturalHeight, src: e.src.slice(0, 22)}))")
            title = page.title()
            text = page.inner_text("body")
            active = page.evaluate("document.querySelectorAll('script, svg, iframe, object, embed').length")
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(screenshot), full_page=True)
        finally:
            browser.close()
    return {"images": images, "messages": messages, "title": title, "requests": requests, "dialogs": dialogs,
            "text": text, "active": active}


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_release_report_renders_in_chromium(catalog: Catalog, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    proc = run_r1f("report", "rel", "--out", str(out), "--catalog", str(catalog.root))
    assert str(out) in proc.stdout.replace("\n", "")
    text = out.read_text(encoding="utf-8")
    # Self-contained: no link, script or image fetched from anywhere.
    assert not re.search(r"""(src|href)=['"](?!data:)""", text)
    seen = render(out, ARTIFACTS / "report.png")
    assert seen["title"] == "Release rel"
    assert len(seen["images"]) == PLOTS
    for img in seen["images"]:
        assert img["complete"] and img["w"] > 0 and img["h"] > 0, img
        assert img["src"].startswith("data:image/png;base64")
    assert seen["messages"] == []
    assert all(u.startswith(("file:", "data:")) for u in seen["requests"]), seen["requests"]
    for title in ("Chain-of-thought length per domain", "Accept rate per source", "Accept rate per difficulty",
                  "Drop reasons per filter and judge", "Language shares",
                  "Pass rate per prompt (rejection sampling)", "Tokens spent per accepted sample"):
        assert f"alt='{title}'" in text
    # The figures the report prints are the catalog's (the card prints the same ones).
    assert "<td>math_accuracy</td><td>1</td><td>30</td><td>20</td><td>0.6667</td>" in text
    assert (ARTIFACTS / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("R1F_UPDATE_DOCS"):
        (ROOT / "docs").mkdir(exist_ok=True)
        shutil.copyfile(ARTIFACTS / "report.png", ROOT / "docs" / "report.png")


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_catalog_report_and_an_odd_source_name(tmp_path: Path) -> None:
    cat = build_catalog(tmp_path, odd_source=True)
    out = tmp_path / "whole.html"
    run_r1f("report", "--out", str(out), "--catalog", str(cat.root))
    text = out.read_text(encoding="utf-8")
    assert "Catalog report" in text and "web: forum\nposts #1 &#39;quoted&#39; | piped" in text
    seen = render(out, ARTIFACTS / "report-catalog.png")
    assert len(seen["images"]) == PLOTS and all(i["w"] > 0 for i in seen["images"])
    assert seen["messages"] == []


@pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed (apt-get install chromium)")
def test_hostile_names_show_as_text(tmp_path: Path) -> None:
    """Source, model and domain names and a judge's reasons come from users: the report shows them as text and
    runs none of them."""
    gens = tmp_path / "gens.jsonl"
    write_generations(gens, n_prompts=2)
    source, model, domain = HOSTILE
    cat = Catalog(tmp_path / "cat")
    ingest(cat, gens, IngestOptions(source=source, generations=True, model=model, domain=domain))
    # Half accepted (so the domain shows), half dropped with a hostile reason (so the drop reasons show it).
    cat.add_verdicts([{"generation_id": gid, "judge": "math_accuracy", "judge_version": "1", "score": float(ok),
                       "passed": ok, "reason": "correct" if ok else source}
                      for i, gid in enumerate(cat.generations()["generation_id"]) for ok in [i % 2 == 0]])
    out = tmp_path / "hostile.html"
    run_r1f("report", "--out", str(out), "--catalog", str(tmp_path / "cat"))
    text = out.read_text(encoding="utf-8")
    assert not any(h in text for h in HOSTILE)  # each is escaped in the file...
    seen = render(out, ARTIFACTS / "report-hostile.png")
    assert all(h in seen["text"] for h in HOSTILE), seen["text"]  # ...and reads as itself on the page
    assert seen["dialogs"] == [] and seen["active"] == 0 and seen["messages"] == []
    assert len(seen["images"]) == PLOTS


def test_report_of_a_missing_release(catalog: Catalog, tmp_path: Path) -> None:
    proc = run_r1f("report", "nope", "--out", str(tmp_path / "r.html"), "--catalog", str(catalog.root),
                   check=False)
    assert proc.returncode == 2 and "no release named 'nope'" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "r.html").exists()
