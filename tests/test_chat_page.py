"""The chat page in a real headless browser: Debian's chromium driven by Playwright.

Playwright's own browser download does not work on the course machines, so the test uses
the system chromium (`apt-get install -y chromium`) and skips, saying how to install it,
where there is none.
"""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from loraweek.data.answer import parse_answer
from loraweek.serving.process import ServerProcess

CHROMIUM = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run"]

pytestmark = pytest.mark.skipif(
    CHROMIUM is None,
    reason="no chromium: install it with `sudo apt-get install -y chromium` (Debian/Ubuntu); "
           "`bash run.sh test` does this where it runs as root")


@pytest.fixture(scope="module")
def server():
    from loraweek.models.finetuned import course_adapter
    from loraweek.profiles import get_profile

    with ServerProcess(["--adapter", str(course_adapter(get_profile("ci"), progress=False)), "--profile", "ci"]) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        # Playwright gives the browser a fresh temporary profile itself (no --user-data-dir)
        b = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield b
        b.close()


def expect(locator):
    from playwright.sync_api import expect as _expect   # polls in Playwright's own world: the page's CSP stays on

    return _expect(locator)


def open_page(browser, server):
    page = browser.new_page()
    page.goto(server.base_url + "/")
    page.get_by_test_id("api-key").fill(server.api_key)
    return page


def test_page_streams_an_answer_from_the_real_server(browser, server):
    page = open_page(browser, server)
    seen_lengths = []
    page.expose_function("noteLength", lambda n: seen_lengths.append(n))
    # record how the streamed text grows, from inside the page, while it streams
    page.evaluate("""() => new MutationObserver(() => window.noteLength(
        document.querySelector('[data-testid=stream]').textContent.length)).observe(
        document.querySelector('[data-testid=stream]'), {childList: true, characterData: true, subtree: true})""")
    page.get_by_test_id("message").fill("Đơn hàng của tôi đã 5 ngày chưa giao, làm ơn kiểm tra.")
    page.get_by_test_id("send").click()
    expect(page.get_by_test_id("status")).to_have_text(re.compile("^done"), timeout=120_000)
    text = page.get_by_test_id("stream").inner_text()
    assert text.strip()
    assert len(set(seen_lengths)) >= 2, "the answer should appear in pieces as it streams, not all at once"
    parsed = parse_answer(text)
    fields = [page.get_by_test_id(f).inner_text() for f in ("intent", "priority", "language", "reply")]
    if parsed is not None:
        assert fields == [parsed["intent"], parsed["priority"], parsed["language"], parsed["reply"]]
    else:   # an invalid answer fills no routing field and says so
        assert fields == ["", "", "", ""]
        assert "not valid routing JSON" in page.get_by_test_id("status").inner_text()
    page.close()


def test_model_text_is_rendered_as_text_never_html(browser, server):
    """A reply containing markup must show as characters; nothing in it may run."""
    page = open_page(browser, server)
    evil = '<img src=x onerror="window.pwned=1"><b>bold</b>'
    answer = json.dumps({"intent": "order_status", "priority": "low", "language": "en", "reply": evil})
    sse = "".join(f"data: {json.dumps({'choices': [{'index': 0, 'delta': {'content': piece}, 'finish_reason': None}]})}\n\n"
                  for piece in (answer[:20], answer[20:])) + \
        f"data: {json.dumps({'choices': [{'index': 0, 'delta': {}, 'finish_reason': 'stop'}]})}\n\ndata: [DONE]\n\n"
    # this one request is answered by the test (llama.cpp's web UI tests do the same) so the reply is known
    page.route("**/v1/chat/completions", lambda route: route.fulfill(status=200, body=sse,
                                                                      headers={"content-type": "text/event-stream"}))
    page.get_by_test_id("message").fill("hello")
    page.get_by_test_id("send").click()
    expect(page.get_by_test_id("status")).to_have_text(re.compile("^done"), timeout=30_000)
    assert page.get_by_test_id("reply").inner_text() == evil
    assert page.get_by_test_id("stream").inner_text() == answer
    assert page.locator("img").count() == 0 and page.locator("b").count() == 0
    assert page.evaluate("window.pwned") is None
    page.close()


def test_wrong_key_shows_the_servers_error(browser, server):
    page = browser.new_page()
    page.goto(server.base_url + "/")
    page.get_by_test_id("api-key").fill("wrong-key")
    page.get_by_test_id("message").fill("hello")
    page.get_by_test_id("send").click()
    expect(page.get_by_test_id("status")).to_have_text(re.compile("^Error"), timeout=30_000)
    assert "API key" in page.get_by_test_id("status").inner_text()
    page.close()
