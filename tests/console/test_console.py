"""The web console in a real browser: Debian's headless Chromium driven by Selenium through
Debian's chromedriver (Selenium Manager downloads nothing), against the real embedded service.

One walk through what a user does, in order, each step checked on the page and against the API:
paste the key; upload a video through the file input and an audio file through a synthetic drop
(a DataTransfer: drag and drop itself cannot be driven); see the video's poster load; see an API
error shown; render and watch the progress reach completed; download; see the webhook endpoint,
its delivery log and a redelivery; see the credits and the ledger; cancel a render. Screenshots
of every step go to $ROUGHY_TEST_ARTIFACTS (default tests/.artifacts/console/).
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Service, start_service
from tests.media import make_audio, make_video
from tests.webhooks.receiver import Receiver

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
DEFAULT_ARTIFACTS = Path(__file__).resolve().parents[1] / ".artifacts" / "console"
ARTIFACTS = Path(os.environ.get("ROUGHY_TEST_ARTIFACTS") or DEFAULT_ARTIFACTS)

missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not os.access(path, os.X_OK)]
if missing:
    pytest.skip(
        f"{' and '.join(missing)} not found: this test needs Debian's chromium and chromium-driver; "
        "it runs in CI, which installs chromium and chromium-driver (.ci/run)",
        allow_module_level=True,
    )
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is in the dev extra: pip install -e '.[dev]'")
from selenium.common.exceptions import StaleElementReferenceException  # noqa: E402
from selenium.webdriver.chrome.service import Service as DriverService  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.remote.webelement import WebElement  # noqa: E402
from selenium.webdriver.support.ui import Select  # noqa: E402

pytestmark = pytest.mark.timeout(180)


# -- fixtures -------------------------------------------------------------------------------------


@pytest.fixture
def console_service(tmp_path: Path) -> Iterator[Service]:
    """The embedded service, allowed to deliver webhooks to a loopback receiver."""
    svc = start_service(tmp_path / "data", webhook_allow_private=True, webhook_retry_base=0.1, webhook_timeout=2)
    yield svc
    svc.stop()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'chromium-profile'}", "--window-size=1400,1200",
    ):  # fmt: skip
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=DriverService(executable_path=CHROMEDRIVER), options=options)
    driver.implicitly_wait(0)
    yield driver
    driver.quit()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Callable[[WebDriver, str], Path]:
    """`shot(driver, name)` saves a full-window PNG as an artifact and prints where."""
    folder = ARTIFACTS
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    count = [0]

    def shot(driver: WebDriver, name: str) -> Path:
        count[0] += 1
        path = folder / f"{count[0]:02d}-{name}.png"
        height = driver.execute_script("return document.documentElement.scrollHeight")
        driver.set_window_size(1400, max(1200, min(int(height) + 40, 4000)))
        driver.save_screenshot(str(path))
        print(f"screenshot: {path}")
        return path

    return shot


# -- helpers --------------------------------------------------------------------------------------


def until(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """`check()`'s first true value. The console redraws its lists while something moves, so an
    element found a moment ago may be gone: that is one more look, not a failure."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except StaleElementReferenceException:
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def find(driver: WebDriver, css: str) -> list[WebElement]:
    return driver.find_elements(By.CSS_SELECTOR, css)


def do(what: str, action: Callable[[], object]) -> None:
    """Run `action` on freshly found elements (again if the list was redrawn under it)."""
    until(what, lambda: action() or True)


def card(driver: WebDriver, filename: str) -> WebElement:
    """The asset card of `filename` (AssertionError when there is none)."""
    for element in find(driver, "#assets li.card"):
        if element.find_element(By.CSS_SELECTOR, ".name").text == filename:
            return element
    raise AssertionError(f"no card for {filename}")


def card_facts(driver: WebDriver, filename: str) -> dict[str, Any] | None:
    """The card's state and its poster image's natural size (null: no <img>), read in one go."""
    facts: dict[str, Any] | None = driver.execute_script(
        """
        const card = [...document.querySelectorAll("#assets li.card")]
          .find((c) => c.querySelector(".name").textContent === arguments[0]);
        if (!card) return null;
        const img = card.querySelector("img.poster");
        return { state: card.dataset.state, poster: img ? [img.naturalWidth, img.naturalHeight] : null };
        """,
        filename,
    )
    return facts


def card_state(driver: WebDriver, filename: str) -> str | None:
    facts = card_facts(driver, filename)
    return facts["state"] if facts else None


def drop_file(driver: WebDriver, path: Path, mime: str) -> None:
    """What a drop of `path` onto the drop zone delivers: a DragEvent carrying a DataTransfer."""
    driver.execute_script(
        """
        const [name, mime, b64] = arguments;
        const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
        const data = new DataTransfer();
        data.items.add(new File([bytes], name, { type: mime }));
        const zone = document.getElementById("drop-zone");
        for (const type of ["dragenter", "dragover", "drop"]) {
          zone.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
        }
        """,
        path.name,
        mime,
        base64.b64encode(path.read_bytes()).decode(),
    )


def renders(driver: WebDriver) -> list[dict[str, Any]]:
    """The render rows as the page shows them, read in one go."""
    rows: list[dict[str, Any]] = driver.execute_script(
        """
        return [...document.querySelectorAll("#renders li.render")].map((li) => ({
          id: li.dataset.id, state: li.dataset.state,
          percent: li.querySelector(".percent").textContent,
          progress: Number(li.querySelector("progress").value),
          href: li.querySelector("a.download") ? li.querySelector("a.download").href : null,
          button: li.querySelector("button.cancel").textContent,
        }));
        """
    )
    return rows


def deliveries(driver: WebDriver) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = driver.execute_script(
        """
        return [...document.querySelectorAll("#deliveries tr.delivery")].map((tr) => ({
          event: tr.dataset.event, state: tr.dataset.state, text: tr.textContent,
        }));
        """
    )
    return rows


# -- the walk -------------------------------------------------------------------------------------


def test_console_end_to_end(console_service: Service, receiver: Receiver, browser: WebDriver, shots, tmp_path) -> None:  # type: ignore[no-untyped-def]
    svc, driver = console_service, browser
    video = make_video(tmp_path / "talk.mp4", duration=2.0, width=320, height=240)
    song = make_audio(tmp_path / "song.mp3", duration=2.0)

    # `/` is the console; the page itself needs no key.
    driver.get(svc.url + "/")
    assert driver.current_url == svc.url + "/console/"
    assert driver.find_element(By.ID, "console").is_displayed() is False
    shots(driver, "key-prompt")

    # A wrong key: the API's error is shown (code and message), and nothing else opens.
    driver.find_element(By.ID, "api-key").send_keys("rk_not-a-key")
    driver.find_element(By.ID, "connect").click()
    until("the error banner", lambda: driver.find_element(By.ID, "error").is_displayed())
    assert driver.find_element(By.ID, "error-code").text == "unauthorized"
    assert driver.find_element(By.ID, "error-message").text
    shots(driver, "wrong-key")

    driver.find_element(By.ID, "api-key").clear()
    driver.find_element(By.ID, "api-key").send_keys(svc.key)
    driver.find_element(By.ID, "connect").click()
    until("the console", lambda: driver.find_element(By.ID, "console").is_displayed())
    assert not driver.find_element(By.ID, "error").is_displayed()
    assert driver.find_element(By.ID, "balance").text == "10"
    assert driver.execute_script("return sessionStorage.getItem('roughy.apiKey')") == svc.key

    # A webhook endpoint, before anything happens, so the render's event is delivered to it.
    driver.find_element(By.ID, "webhook-url").send_keys(receiver.url("/hook"))
    driver.find_element(By.ID, "create-webhook").click()
    until("the endpoint", lambda: find(driver, "#webhooks li.endpoint"))
    endpoint = find(driver, "#webhooks li.endpoint")[0]
    assert receiver.url("/hook") in endpoint.text and "render.completed" in endpoint.text
    assert driver.find_element(By.CSS_SELECTOR, "#webhook-secret .secret").text.startswith("whsec_")

    # Upload: the video through the drop zone's file input, the song by a (synthetic) drop.
    driver.find_element(By.ID, "file-input").send_keys(str(video))
    drop_file(driver, song, "audio/mpeg")
    until("the video to be ready", lambda: card_state(driver, "talk.mp4") == "ready", timeout=40)
    until("the song to be ready", lambda: card_state(driver, "song.mp3") == "ready", timeout=40)
    progress = [float(p.get_attribute("value") or 0) for p in find(driver, "#uploads progress")]
    assert progress == [1.0, 1.0], "each upload's progress bar reached the end"
    until("the poster to load", lambda: ((card_facts(driver, "talk.mp4") or {}).get("poster") or [0])[0] > 0)
    width, height = card_facts(driver, "talk.mp4")["poster"]  # type: ignore[index]
    assert (width, height) == (320, 240), "the poster image decoded, at the video's display size"
    assert card_facts(driver, "song.mp3")["poster"] is None, "audio has no poster"  # type: ignore[index]
    with svc.client() as api:
        kinds = {a["filename"]: a["kind"] for a in api.get("/v1/assets").json()["data"]}
    assert kinds == {"talk.mp4": "video", "song.mp3": "audio"}, "the kind comes from the file's type"
    shots(driver, "assets-with-poster")

    # Open the video; ask for a tier above its size: the API's 422 is shown with its field.
    do("open the video", lambda: card(driver, "talk.mp4").find_element(By.CSS_SELECTOR, "button.open").click())
    until("the asset's panel", lambda: driver.find_element(By.ID, "detail").is_displayed())
    Select(driver.find_element(By.ID, "render-resolution")).select_by_value("1080p")
    driver.find_element(By.ID, "create-render").click()
    until("the error banner", lambda: driver.find_element(By.ID, "error").is_displayed())
    assert driver.find_element(By.ID, "error-code").text == "validation_error"
    assert "resolution" in driver.find_element(By.ID, "error-detail").text
    shots(driver, "api-error")

    # A cut of explicit segments completes and becomes a choice for renders.
    driver.find_element(By.ID, "cut-segments").send_keys("0-0.8, 1.2-2")
    driver.find_element(By.ID, "create-cut").click()
    until("the cut", lambda: find(driver, '#cuts li.cut[data-state="completed"]'))
    cut_id = driver.find_element(By.CSS_SELECTOR, "#cuts li.cut").get_attribute("data-id")
    assert cut_id in [o.get_attribute("value") for o in Select(driver.find_element(By.ID, "render-cut")).options]

    # A render at the source's size: its progress is followed until it completes.
    Select(driver.find_element(By.ID, "render-resolution")).select_by_value("")
    driver.find_element(By.ID, "create-render").click()
    until("the render", lambda: renders(driver))
    assert not driver.find_element(By.ID, "error").is_displayed(), "a successful action clears the banner"
    seen: list[tuple[str, str]] = []

    def completed() -> dict[str, Any] | None:
        rows = renders(driver)
        if rows and (not seen or seen[-1] != (rows[0]["state"], rows[0]["percent"])):
            seen.append((rows[0]["state"], rows[0]["percent"]))
        return rows[0] if rows and rows[0]["state"] == "completed" and rows[0]["href"] else None

    done = until("the render to complete", completed, timeout=40)
    assert (done["percent"], done["progress"]) == ("100 %", 1.0), done
    states = [state for state, _ in seen]
    assert states[-1] == "completed" and set(states) <= {"pending", "running", "completed"}, seen
    shots(driver, "render-completed")

    download = httpx.get(done["href"], timeout=30)
    assert download.status_code == 200 and download.headers["content-type"] == "video/mp4"
    assert len(download.content) > 0 and download.content[4:8] == b"ftyp"

    # The delivery log of the endpoint: render.completed arrived; redeliver it.
    receiver.wait(1, "/hook")
    do("open the delivery log", lambda: driver.find_element(By.CSS_SELECTOR, "#webhooks button.deliveries").click())

    def delivered() -> list[dict[str, Any]]:
        return [d for d in deliveries(driver) if d["state"] == "succeeded" and "render.completed" in d["text"]]

    row = until("the delivery", delivered)[0]
    assert "HTTP 200" in row["text"]
    button = f'#deliveries tr.delivery[data-event="{row["event"]}"] button.redeliver'
    do("redeliver", lambda: driver.find_element(By.CSS_SELECTOR, button).click())
    again = receiver.wait(2, "/hook")
    assert [r.event_id for r in again] == [row["event"], row["event"]], "the same event, delivered again"
    until("both deliveries listed", lambda: len(delivered()) == 2)
    shots(driver, "webhook-deliveries")

    # Credits: two assets charged one credit each, under the starter grant.
    until("the balance", lambda: driver.find_element(By.ID, "balance").text == "8")
    entries = [r.get_attribute("class") for r in find(driver, "#ledger tr.entry")]
    assert sorted(entries) == ["entry charge", "entry charge", "entry grant"]
    ledger_text = driver.find_element(By.ID, "ledger").text
    assert "+10" in ledger_text and "\u22121" in ledger_text
    shots(driver, "credits")

    # Cancel: with the workers stopped a new render stays pending; its Cancel removes it.
    svc.stop_processing()
    Select(driver.find_element(By.ID, "render-format")).select_by_value("mov")
    driver.find_element(By.ID, "create-render").click()
    rows = until("a second render", lambda: len(renders(driver)) == 2 and renders(driver))
    pending = [r for r in rows if r["state"] == "pending"]
    assert len(pending) == 1 and pending[0]["button"] == "Cancel", rows
    shots(driver, "render-pending")
    cancel = f'#renders li.render[data-id="{pending[0]["id"]}"] button.cancel'
    do("cancel the render", lambda: driver.find_element(By.CSS_SELECTOR, cancel).click())
    left = until("the cancelled render to go", lambda: len(renders(driver)) == 1 and renders(driver))
    assert [r["id"] for r in left] == [done["id"]]
    with svc.client() as api:
        assert api.get(f"/v1/renders/{pending[0]['id']}").status_code == 404
    shots(driver, "render-cancelled")

    # The Content-Security-Policy blocked nothing of the console's own.
    logs = driver.get_log("browser")
    assert not [e for e in logs if "Content Security Policy" in e["message"]], json.dumps(logs, indent=1)
