"""The run inspector in a real headless Chromium (selenium + Debian's chromium-driver).

The story: sign in with the API token, upload a chain (first with a mistake, shown next to the
field), start a run that pauses at a breakpoint, edit a variable of the paused run, resume it,
and watch the page turn to `succeeded` with the edited value in the output. Each page is saved
as a screenshot: under docs/ui/ (the README's pictures) when TASKENGINE_UPDATE_SCREENSHOTS=1,
otherwise in the test's temporary folder, so a test run leaves the checkout clean.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from taskengine.testing.fake_llm import FakeLLMServer

from .conftest import TOKEN, make_settings

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "ui"

CHAIN_YAML = """\
id: article
debug: true
tasks:
  - id: draft
    handler: raw_string
    prompt_template: "Draft about {{ input }}"
    transition:
      branches: [{operator: default, goto: review}]
  - id: review
    handler: raw_string
    prompt_template: "Review: {{ draft }}"
    transition:
      branches: [{operator: default, goto: end}]
"""


def _browser_missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not shutil.which(path):
            return f"{path} is missing (apt-get install chromium chromium-driver)"
    return None


@pytest.fixture
def browser() -> Iterator[Any]:
    reason = _browser_missing()
    if reason:
        if os.environ.get("TASKENGINE_REQUIRE_SERVICES") == "1":
            pytest.fail(reason)
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--window-size=1280,900"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def echo_prompt(request: dict[str, Any]) -> str:
    return "echo: " + request["messages"][-1]["content"]


def wait_until(condition: Callable[[], Any], what: str, timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = condition()
        except Exception:  # the page may be reloading under us
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def shot(driver: Any, name: str, folder: Path) -> None:
    if os.environ.get("TASKENGINE_UPDATE_SCREENSHOTS") == "1":
        folder = SHOTS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 1000, f"{path} is not a picture of the page"


def test_pause_edit_resume_in_the_browser(
    browser: Any, live_server: Any, tmp_path: Path, fake_llm: FakeLLMServer
) -> None:
    from selenium.webdriver.common.by import By

    fake_llm.add_rule(reply=echo_prompt)
    server = live_server(make_settings(tmp_path, fake_llm, api_token=TOKEN))
    find = browser.find_element

    # a page without the token leads to the login form
    browser.get(server.url + "/ui")
    wait_until(lambda: "/ui/login" in browser.current_url, "the login page")
    find(By.ID, "token").send_keys("wrong")
    find(By.CSS_SELECTOR, "button[type=submit]").click()
    assert "not the server's" in wait_until(lambda: find(By.ID, "login-error").text, "an error")
    find(By.ID, "token").send_keys(TOKEN)
    find(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(lambda: find(By.ID, "runs-table"), "the runs list")
    assert "no runs" in find(By.ID, "runs-rows").text

    # upload: a goto to a task that does not exist is shown next to the field
    browser.get(server.url + "/ui/chains")
    find(By.ID, "definition").send_keys(CHAIN_YAML.replace("goto: end", "goto: publish"))
    find(By.CSS_SELECTOR, "#upload-form button").click()
    problems = wait_until(lambda: find(By.ID, "problems").text, "lint problems")
    assert "publish" in problems and "transition" in problems
    shot(browser, "chains-upload-error", tmp_path)
    find(By.ID, "definition").clear()
    find(By.ID, "definition").send_keys(CHAIN_YAML)
    find(By.CSS_SELECTOR, "#upload-form button").click()
    wait_until(lambda: "/ui/chains/article" in browser.current_url, "the chain page")
    assert "Draft about" in find(By.ID, "definition").text
    shot(browser, "chain", tmp_path)

    # start a run that pauses before `review`
    find(By.ID, "run-input").send_keys("otters")
    find(By.ID, "bp-review").click()
    find(By.ID, "start").click()
    status = wait_until(lambda: find(By.ID, "run-status").text == "paused" and "paused", "pause")
    assert status == "paused"
    assert find(By.ID, "current-task").text == "review"
    current = find(By.CSS_SELECTOR, "svg.chain-graph g.node.current").get_attribute("data-task")
    assert current == "review"
    visited = browser.find_elements(By.CSS_SELECTOR, "svg.chain-graph g.node.visited")
    assert [v.get_attribute("data-task") for v in visited] == ["draft"]
    draft = find(By.ID, "var-draft")
    assert draft.get_attribute("value") == "echo: Draft about otters"
    shot(browser, "run-paused", tmp_path)

    # edit the variable the next task reads, and resume
    draft.clear()
    draft.send_keys("EDITED by a person")
    find(By.ID, "resume").click()
    wait_until(lambda: find(By.ID, "run-status").text == "succeeded", "success", timeout=20)
    assert find(By.ID, "run-output").text == "echo: Review: EDITED by a person"
    rows = browser.find_elements(By.CSS_SELECTOR, "#timeline tr.step")
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == ["draft", "review"]
    assert not browser.find_elements(By.ID, "resume")  # a finished run offers no resume
    shot(browser, "run-succeeded", tmp_path)

    # the list shows it; the status filter narrows it
    browser.get(server.url + "/ui")
    row = wait_until(lambda: find(By.CSS_SELECTOR, "tr.run-row"), "the run in the list")
    assert "succeeded" in row.text and "article" in row.text
    shot(browser, "runs", tmp_path)
    browser.get(server.url + "/ui?status=paused")
    assert "no runs" in find(By.ID, "runs-rows").text
