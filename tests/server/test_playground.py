"""The playground page at /playground: its routes over HTTP, and the page itself in headless Chromium.

The browser tests drive Debian's ``chromium`` through its ``chromedriver`` with Selenium (``make test``
installs both with ``scripts/browser.sh``); without them only those tests skip, saying how to get them.
Set ``TOOLRUN_PLAYGROUND_SCREENSHOT=docs/playground.png`` to save the real-model test's page as a picture.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from seed_testing import SEED_PROMPT, SEED_TOOL
from server_testing import API_KEY, SCRIPTED, WEATHER_TOOL, LiveServer, scripted_ai

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
GITHUB_SPEC = Path(__file__).resolve().parents[2] / "examples" / "data" / "partial_api.github.com.json"
#: A guard against a hang, not a speed bound: the scripted engine answers at once, so a page step takes
#: well under a second even on a loaded 2-core machine.
PAGE_WAIT_S = 30
#: Guard against a hang on the real model: the seed's call is ~20 tokens of a 0.5B model, seconds normally;
#: this is over 10x that on a loaded 2-core machine, model load included.
MODEL_WAIT_S = 600


def by_testid(testid: str) -> tuple[str, str]:
    return ("css selector", f'[data-testid="{testid}"]')


# ------------------------------------------------------------------ routes over HTTP


def test_root_redirects_to_the_page_and_the_page_loads_only_its_own_files(start_server) -> None:
    ai, _ = scripted_ai()
    server = start_server(ai)
    with httpx.Client(base_url=server.url) as client:
        root = client.get("/")
        assert root.status_code == 307 and root.headers["location"] == "/playground"
        page = client.get("/playground")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
        for testid in ("model", "tools", "message", "send"):
            assert f'data-testid="{testid}"' in page.text
        # No CDN, no web font: everything the page loads comes from this server.
        assert all(url.startswith("/playground/static/") for url in re.findall(r'(?:src|href)="([^"]*)"', page.text))
        for name, media_type in (("playground.js", "javascript"), ("playground.css", "text/css")):
            asset = client.get(f"/playground/static/{name}")
            assert asset.status_code == 200 and media_type in asset.headers["content-type"]
            assert "@import" not in asset.text and "url(" not in asset.text
        assert client.get("/playground/settings").json() == {
            "default_model": "@local/qwen2.5-coder-0.5b-instruct",
            "api_key_required": False,
        }


def test_openapi_text_becomes_tools(start_server) -> None:
    ai, _ = scripted_ai()
    server = start_server(ai)
    answer = httpx.post(f"{server.url}/playground/openapi", json={"document": GITHUB_SPEC.read_text()})
    assert answer.status_code == 200, answer.text
    tools = {tool["name"]: tool for tool in answer.json()["tools"]}
    assert set(tools) == {"users_get-by-username", "repos_list-for-user", "repos_get", "orgs_get", "search_repos"}
    user = tools["users_get-by-username"]["parameters"]
    assert user["properties"]["path"]["required"] == ["username"]


def test_openapi_route_never_fetches_a_url_nor_reads_a_file(start_server, github_standin, tmp_path) -> None:
    ai, _ = scripted_ai()
    server = start_server(ai)
    before = list(github_standin.requests)
    answer = httpx.post(f"{server.url}/playground/openapi", json={"document": f"{github_standin.url}/users/x"})
    assert answer.status_code == 400 and answer.json()["error"]["param"] == "document"
    assert "does not fetch URLs" in answer.json()["error"]["message"]
    assert github_standin.requests == before

    on_disk = tmp_path / "spec.json"  # a real document the server could read, were it to take text for a path
    on_disk.write_text(GITHUB_SPEC.read_text())
    answer = httpx.post(f"{server.url}/playground/openapi", json={"document": str(on_disk)})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_openapi_spec"


def test_openapi_route_needs_the_key_on_a_keyed_server(start_server) -> None:
    ai, _ = scripted_ai()
    server = start_server(ai, api_keys=[API_KEY])
    document = {"document": GITHUB_SPEC.read_text()}
    assert httpx.post(f"{server.url}/playground/openapi", json=document).status_code == 401
    keyed = httpx.post(
        f"{server.url}/playground/openapi", json=document, headers={"Authorization": f"Bearer {API_KEY}"}
    )
    assert keyed.status_code == 200
    assert httpx.get(f"{server.url}/playground/settings").json()["api_key_required"] is True


# ------------------------------------------------------------------ the page in a browser


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip(
            "the playground's browser test needs Debian's chromium and chromium-driver: "
            "run `bash scripts/browser.sh` as root (or `apt-get install chromium chromium-driver`)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # The driver's path is given: Selenium Manager never runs, so nothing is downloaded.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


@pytest.fixture
def page(browser) -> Iterator[Callable[[LiveServer], object]]:
    """``page(server)`` opens the server's playground and returns the driver; afterwards, no console errors."""

    def open_page(server: LiveServer) -> object:
        browser.get_log("browser")  # drop the previous test's messages
        browser.get(server.url + "/")  # the redirect too
        return browser

    yield open_page
    errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, errors


def wait(driver, seconds: float = PAGE_WAIT_S):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, seconds)


def choose_model(driver, model: str) -> None:
    from selenium.webdriver.support.ui import Select

    wait(driver).until(lambda d: d.find_elements("css selector", f'[data-testid="model"] option[value="{model}"]'))
    Select(driver.find_element(*by_testid("model"))).select_by_value(model)


def ask(driver, tools: list[dict], message: str) -> None:
    """Paste the tools and send the message, as a person does (typing, then Enter)."""
    from selenium.webdriver.common.keys import Keys

    field = driver.find_element(*by_testid("tools"))
    field.clear()
    field.send_keys(json.dumps(tools))
    driver.find_element(*by_testid("message")).send_keys(message, Keys.ENTER)


def test_a_call_streams_in_then_its_result_goes_back_and_the_answer_shows(start_server, page) -> None:
    ai, _ = scripted_ai()
    driver = page(start_server(ai))
    assert driver.current_url.endswith("/playground")
    choose_model(driver, SCRIPTED)
    assert not driver.find_element("id", "api-key").is_displayed()  # a keyless server needs none
    ask(driver, [{"type": "function", "function": WEATHER_TOOL}], "What's the weather in Lisbon?")

    call = wait(driver).until(lambda d: d.find_element(*by_testid("tool-call")))
    wait(driver).until(lambda d: "Lisbon" in call.text)
    assert "get_weather" in call.text and json.loads(call.find_element("css selector", ".call-args").text) == {
        "city": "Lisbon"
    }
    result = call.find_element("css selector", ".call-result textarea")
    result.send_keys("21°C and sunny")
    driver.find_element("css selector", ".actions button").click()

    answer = wait(driver).until(lambda d: d.find_element(*by_testid("assistant")))
    wait(driver).until(lambda d: "21°C and sunny" in answer.text)
    assert len(driver.find_elements(*by_testid("tool-call"))) == 1


def test_the_openapi_example_is_fetched_by_the_browser_and_converted(start_server, page) -> None:
    from selenium.webdriver.support.ui import Select

    ai, _ = scripted_ai()
    driver = page(start_server(ai))
    Select(driver.find_element("id", "example")).select_by_visible_text("GitHub's REST API, from its OpenAPI document")
    wait(driver).until(lambda d: d.find_element(*by_testid("tools")).get_attribute("value"))
    tools = json.loads(driver.find_element(*by_testid("tools")).get_attribute("value"))
    assert "users_get-by-username" in [tool["name"] for tool in tools]
    assert driver.find_element(*by_testid("message")).get_attribute("value") == SEED_PROMPT


def test_a_keyed_server_asks_for_the_key_and_keeps_it_in_the_tab(start_server, page) -> None:
    ai, _ = scripted_ai()
    driver = page(start_server(ai, api_keys=[API_KEY]))
    from selenium.webdriver.support import expected_conditions

    key_field = wait(driver).until(expected_conditions.visibility_of_element_located(("id", "api-key")))
    key_field.send_keys(API_KEY, "\t")  # leaving the field saves it
    choose_model(driver, SCRIPTED)
    assert driver.execute_script("return sessionStorage.getItem('toolrun.apiKey')") == API_KEY
    assert driver.execute_script("return localStorage.length") == 0
    ask(driver, [WEATHER_TOOL], "Weather in Lisbon?")
    call = wait(driver).until(lambda d: d.find_element(*by_testid("tool-call")))
    wait(driver).until(lambda d: "Lisbon" in call.text)
    driver.execute_script("sessionStorage.clear()")


@pytest.mark.model
def test_the_seed_example_on_the_real_model(start_server, async_ai, page) -> None:
    """The seed's question on the real default model: the page shows getGithubUser called for cloudflare."""
    driver = page(start_server(async_ai))
    choose_model(driver, "@local/qwen2.5-coder-0.5b-instruct")
    ask(driver, [SEED_TOOL], SEED_PROMPT)

    call = wait(driver, MODEL_WAIT_S).until(lambda d: d.find_element(*by_testid("tool-call")))
    wait(driver, MODEL_WAIT_S).until(lambda d: not d.find_element(*by_testid("send")).get_attribute("disabled"))
    assert "getGithubUser" in call.text and "cloudflare" in call.text.lower(), call.text
    screenshot = os.environ.get("TOOLRUN_PLAYGROUND_SCREENSHOT")
    if screenshot:  # the README's picture shows the whole round trip: the result goes back, the answer comes
        result = {"login": "cloudflare", "type": "Organization", "name": "Cloudflare", "public_repos": 513}
        call.find_element("css selector", ".call-result textarea").send_keys(json.dumps(result))
        driver.find_element("css selector", ".actions button").click()
        wait(driver, MODEL_WAIT_S).until(lambda d: d.find_elements(*by_testid("assistant")))
        wait(driver, MODEL_WAIT_S).until(lambda d: not d.find_element(*by_testid("send")).get_attribute("disabled"))
        driver.save_screenshot(screenshot)
