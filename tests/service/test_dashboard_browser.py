"""/dashboard in a real browser: Debian's chromium driven by Playwright, against a real service
(uvicorn, the local fake upstream) on Redis and on SQLite.

Screenshots are saved under `artifacts/dashboard/` (ignored by git; CI keeps them as artefacts).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Dialog, Page, sync_playwright
from prometheus_client.parser import text_string_to_metric_families

from tests.service.conftest import ALICE, Serve, ServiceServer

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TOKEN = "browser-test-token-0123456789"
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts" / "dashboard"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"the browser tests need Debian's chromium at {CHROMIUM}: apt-get install chromium "
            "(scripts/test installs it)",
            pytrace=False,
        )
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture(params=["redis", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "redis":
        url: str = request.getfixturevalue("redis_url")
        return url
    return f"sqlite:///{tmp_path}/cache.db"


@pytest.fixture
def admin(serve: Serve, store: str) -> ServiceServer:
    return serve(store=store, admin_token=TOKEN)


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    yield opened
    context.close()


def loaded(page: Page, n: int = 1) -> None:
    """Wait for the page's n-th load of its figures (a selector: the page's CSP forbids eval)."""
    page.wait_for_selector(f'body[data-loaded="{n}"]', state="attached")


def shot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def ask(service: ServiceServer, text: str, model: str = "gpt-4o-mini", **headers: str) -> str:
    answer = httpx.post(
        f"{service.base_url}/chat/completions",
        json={"model": model, "messages": [{"role": "user", "content": text}]},
        headers={"authorization": f"Bearer {ALICE}", **headers},
        timeout=30,
    )
    assert answer.status_code == 200, answer.text
    return answer.headers["x-llmemo-cache"]


def sign_in(page: Page, service: ServiceServer) -> Page:
    refused = page.goto(f"{service.url}/dashboard")
    assert refused is not None and refused.status == 401
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    loaded(page)
    return page


def metrics(service: ServiceServer) -> dict[str, float]:
    """Hits, misses and dollars saved, summed over /metrics' labels."""
    totals = {"hits": 0.0, "miss": 0.0, "dollars_saved": 0.0, "requests": 0.0}
    text = httpx.get(f"{service.url}/metrics", timeout=30).text
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "llmemo_requests_total":
                result = sample.labels["cache"]
                totals["requests"] += sample.value
                if result == "miss":
                    totals["miss"] += sample.value
                elif result in ("hit", "semantic", "stale"):
                    totals["hits"] += sample.value
            elif sample.name == "llmemo_dollars_saved_total":
                totals["dollars_saved"] += sample.value
    return totals


def dollars(value: float) -> str:
    """As the page writes dollars (dashboard.js `dollars`)."""
    size = abs(value)
    return f"${value:.{2 if size >= 1 else 4 if size >= 0.01 or size == 0 else 6}f}"


def accept_next(page: Page, seen: list[str]) -> None:
    def answer(dialog: Dialog) -> None:
        seen.append(dialog.message)
        dialog.accept()

    page.once("dialog", answer)


# -- the figures ------------------------------------------------------------------------------


def test_the_page_shows_the_same_hit_miss_and_saved_dollar_figures_as_metrics(
    admin: ServiceServer, page: Page, store: str
) -> None:
    texts = ["What is a cache?", "Name three prime numbers.", "Say hello."]
    for text in texts:
        assert ask(admin, text) == "miss"
    for text in [*texts, *texts[:2]]:
        assert ask(admin, text) == "hit"
    assert ask(admin, "Tell a joke.", "gpt-4o") == "miss"
    expected = metrics(admin)
    assert (expected["hits"], expected["miss"]) == (5, 4) and expected["dollars_saved"] > 0

    sign_in(page, admin)
    shown = {
        name: page.text_content(f"#{name}")
        for name in ("total-requests", "total-hits", "total-misses")
    }
    assert shown == {
        "total-requests": f"{expected['requests']:,.0f}",
        "total-hits": f"{expected['hits']:,.0f}",
        "total-misses": f"{expected['miss']:,.0f}",
    }
    # dollars: the same sum (added in another order: equal to the last bits), written as the
    # page writes dollars
    saved = float(page.get_attribute("#dollars-saved", "data-value") or "nan")
    assert saved == pytest.approx(expected["dollars_saved"], rel=1e-9)
    assert page.text_content("#dollars-saved") == dollars(saved)
    assert page.text_content("#hit-ratio") == f"{100 * 5 / 9:.1f}%"
    models = page.locator("#by-model tbody tr")
    assert sorted(models.locator("td:first-child").all_text_contents()) == ["gpt-4o", "gpt-4o-mini"]
    assert page.locator("#chart-requests svg rect").count() >= 2  # misses and hits, stacked
    assert page.text_content("#breaker") == "closed"
    shot(page, f"overview-{'redis' if store.startswith('redis') else 'sqlite'}")


# -- entries ----------------------------------------------------------------------------------


def test_an_invalidate_click_with_confirmation_makes_the_next_request_a_miss(
    admin: ServiceServer, page: Page, store: str
) -> None:
    ask(admin, "kept", "gpt-4o-mini")
    ask(admin, "gone", "gpt-4o", **{"x-llmemo-tags": "faq"})
    sign_in(page, admin)
    rows = page.locator("#entry-list tbody tr")
    assert rows.count() == 2
    row = rows.filter(has_text="faq")  # its tags column
    assert row.count() == 1

    page.once("dialog", lambda dialog: dialog.dismiss())  # the confirmation, refused
    row.get_by_role("button", name="invalidate").click()
    page.wait_for_timeout(300)
    assert rows.count() == 2 and ask(admin, "gone", "gpt-4o") == "hit"

    seen: list[str] = []
    accept_next(page, seen)
    row.get_by_role("button", name="invalidate").click()
    page.wait_for_selector("#status:has-text('invalidated')")
    assert seen and "Invalidate the entry llmemo:" in seen[0]
    assert page.text_content("#status") is not None and "1 deleted" in page.text_content("#status")
    assert rows.count() == 1
    assert ask(admin, "gone", "gpt-4o") == "miss"
    assert ask(admin, "kept", "gpt-4o-mini") == "hit"
    shot(page, f"entries-{'redis' if store.startswith('redis') else 'sqlite'}")


def test_the_invalidate_form_deletes_a_tag_after_confirmation(
    admin: ServiceServer, page: Page
) -> None:
    ask(admin, "one", **{"x-llmemo-tags": "faq"})
    ask(admin, "two", **{"x-llmemo-tags": "faq"})
    ask(admin, "three")
    sign_in(page, admin)
    page.fill("#e-tag", "faq")
    page.click("#find button[type=submit]")
    page.wait_for_selector("#entry-list tbody tr:nth-child(2)")
    page.wait_for_selector("#entry-list tbody tr:nth-child(3)", state="detached")
    page.select_option("#i-kind", "tag")
    page.fill("#i-value", "faq")
    seen: list[str] = []
    accept_next(page, seen)
    page.click("#invalidate button[type=submit]")
    page.wait_for_selector("#status:has-text('invalidated tag faq: 2 deleted')")
    assert seen == ["Invalidate tag faq? The matching entries are deleted for every caller."]
    assert [ask(admin, t) for t in ("one", "two", "three")] == ["miss", "miss", "hit"]


# -- semantic hits ------------------------------------------------------------------------------

FRANCE = "What is the capital of France?"
PARAPHRASE = "Which city is the capital of France?"


@pytest.mark.parametrize("show_prompts", [True, False])
def test_a_wrong_hit_report_makes_the_next_paraphrase_a_miss(
    serve: Serve, store: str, page: Page, show_prompts: bool
) -> None:
    service = serve(
        store=store,
        admin_token=TOKEN,
        semantic=True,
        semantic_threshold=0.85,
        dashboard_show_prompts=show_prompts,
    )
    assert ask(service, FRANCE) == "miss"
    assert ask(service, PARAPHRASE) == "semantic"
    sign_in(page, service)
    rows = page.locator("#semantic-hits tbody tr")
    assert rows.count() == 1
    cells = rows.first.locator("td").all_text_contents()
    similarity = float(cells[3])
    assert 0.85 <= similarity < 1 and cells[1:3] == ["default", "gpt-4o-mini"]
    if show_prompts:  # the query, then the prompt it matched
        assert cells[4:6] == [PARAPHRASE, FRANCE]
        assert "Prompts are shown" in (page.text_content("#prompts-note") or "")
    else:
        assert FRANCE not in page.content() and PARAPHRASE not in page.content()
        assert "--dashboard-show-prompts" in (page.text_content("#prompts-note") or "")
    shot(page, f"semantic-{'shown' if show_prompts else 'hidden'}")

    seen: list[str] = []
    accept_next(page, seen)
    rows.first.get_by_role("button", name="report wrong hit").click()
    page.wait_for_selector("#status:has-text('reported')")
    assert seen and "Report this semantic hit as wrong?" in seen[0]
    assert rows.first.get_by_role("button").text_content() == "reported"
    assert ask(service, PARAPHRASE) == "miss"
    assert ask(service, FRANCE) == "hit"
    page.reload()
    loaded(page)
    assert page.text_content("#wrong-hit-reports") == "1"


# -- access -----------------------------------------------------------------------------------


def test_the_page_without_the_token_is_refused(admin: ServiceServer, page: Page) -> None:
    answer = page.goto(f"{admin.url}/dashboard")
    assert answer is not None and answer.status == 401
    assert page.locator("#token").is_visible() and page.locator("#entries").count() == 0
    page.fill("#token", "not-the-token")
    page.click("button[type=submit]")
    assert "wrong token" in page.text_content("main.login")
    # the API the page reads refuses the browser too
    status = page.evaluate("fetch('/admin/stats').then((r) => r.status)")
    assert status == 401
    assert page.context.cookies() == []


def test_without_a_configured_token_the_page_says_how_to_set_it(serve: Serve, page: Page) -> None:
    service = serve()
    answer = page.goto(f"{service.url}/dashboard")
    assert answer is not None and answer.status == 401
    text = page.text_content("main")
    assert text is not None and "LLMEMO_ADMIN_TOKEN" in text
    assert page.locator("form").count() == 0


def test_sign_out_locks_the_page_again(admin: ServiceServer, page: Page) -> None:
    sign_in(page, admin)
    page.click("#logout button")
    page.wait_for_selector("#token")
    assert page.context.cookies() == []


# -- a phone ----------------------------------------------------------------------------------


def test_nothing_overflows_a_phone_sized_window(admin: ServiceServer, browser: Browser) -> None:
    for text in ("a long question about caching " * 4, "short"):
        ask(admin, text, **{"x-llmemo-tags": "some-tag,another-tag"})
        ask(admin, text)
    context = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True)
    try:
        page = sign_in(context.new_page(), admin)
        widths: list[Any] = page.evaluate(
            "[document.documentElement.scrollWidth, document.documentElement.clientWidth]"
        )
        assert widths[0] <= widths[1] == 390
        wide = page.evaluate(
            """Array.from(document.querySelectorAll('body *'))
                .filter((e) => !e.closest('.scroll') && !e.closest('svg'))
                .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 0.5)
                .map((e) => e.tagName + '#' + e.id + '.' + e.className)"""
        )
        assert wide == []
        shot(page, "phone")
    finally:
        context.close()


def test_the_window_and_filter_controls_reload_the_figures(
    admin: ServiceServer, page: Page
) -> None:
    statuses = [ask(admin, "x"), ask(admin, "x")]
    sign_in(page, admin)
    page.select_option("#window", "week")
    loaded(page, 2)
    assert page.text_content("#total-hits") == str(statuses.count("hit")), (
        statuses,
        page.evaluate("fetch('/admin/stats?window=week').then((r) => r.text())"),
    )
    assert page.text_content("#total-requests") == "2"
    page.select_option("#f-kind", "model")
    page.fill("#f-value", "no-such-model")
    page.click("#filters button[type=submit]")
    loaded(page, 3)
    assert page.text_content("#total-requests") == "0"
    assert re.search(r"could not load", page.text_content("#status") or "") is None
