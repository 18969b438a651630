"""The UI under a real browser: podium's app served from a thread of its own, and a
headless Chromium page (Playwright, driving Debian's Chromium) that records its console.

The app runs on its own event loop in a background thread so that the browser, driven
synchronously from the test, and the daemon each keep their own loop; the blocking guard
still watches every call made from podium's code in the server's loop.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web
from playwright.sync_api import Browser, ConsoleMessage, Page, ViewportSize, sync_playwright

from daemon.api.server import create_app
from daemon.config.settings import BasicAuth, Settings
from daemon.engine.webhooks import WebhookRegistry
from daemon.flows.directory import FlowDirectory
from tests.harness import Harness
from tests.services import Chromium

T = TypeVar("T")
USER, PASSWORD = "ada", "lovelace"
DESKTOP = ViewportSize(width=1280, height=900)
PHONE = ViewportSize(width=390, height=844)


class UiServer:
    """podium's API and UI with a live flows directory, as `podium serve` runs them."""

    def __init__(self, root: Path, auth: bool = True) -> None:
        self.flows_dir = root / "flows"
        self.data_dir = root / "data"
        self.auth = BasicAuth(username=USER, password=PASSWORD) if auth else None
        self.url = ""
        self.harness: Harness | None = None
        self.flows: FlowDirectory
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, name="podium-ui-server", daemon=True)

    def __enter__(self) -> UiServer:
        self.flows_dir.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        self._started.result(timeout=60)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)

    def run(self, job: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine in the server's loop (to look at the store, say) and wait for it."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(job, self._loop).result(timeout=60)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            if not self._started.done():
                self._started.set_exception(exc)
            raise

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        h = self.harness = await Harness.open(self.data_dir)
        settings = Settings(data_dir=self.data_dir, flows_dir=self.flows_dir, basic_auth=self.auth)
        webhooks = WebhookRegistry()
        triggers = h.engine.supervisor(webhooks, settings.allowed_paths)
        await triggers.restore()
        h.engine.catalog.listen(triggers.flow_changed)
        flows = self.flows = FlowDirectory(
            self.flows_dir, h.engine.catalog, h.engine.resources.plugins
        )
        await flows.load_all()
        app = create_app(h.engine, settings, webhooks, flows=flows, supervisor=triggers)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            self._started.set_result(None)
            await self._stop.wait()
        finally:
            await runner.cleanup()
            await triggers.stop_all()
            await h.close()


@dataclass
class Console:
    """Everything the pages said on the console; errors fail the test unless expected."""

    messages: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    expected: list[str] = field(default_factory=list)

    def record(self, message: ConsoleMessage) -> None:
        self.messages.append(f"{message.type}: {message.text}")
        if message.type == "error":
            self.errors.append(message.text)

    def page_error(self, error: Exception) -> None:
        self.errors.append(f"uncaught: {error}")

    def allow(self, text: str) -> None:
        """The browser logs every HTTP error answer, even one the page expects and shows
        (a refused run answers 422): allow one error line containing `text`."""
        self.expected.append(text)

    def unexpected(self) -> list[str]:
        left = list(self.expected)
        out = []
        for error in self.errors:
            match = next((e for e in left if e in error), None)
            if match is None:
                out.append(error)
            else:
                left.remove(match)
        return out


@dataclass
class Screens:
    """Screenshots, named by what they show, under the test's directory."""

    folder: Path
    taken: list[Path] = field(default_factory=list)

    def shoot(self, page: Page, name: str) -> Path:
        path = self.folder / f"{name}.png"
        path.write_bytes(page.screenshot(full_page=True))
        self.taken.append(path)
        return path


@contextmanager
def browser(chromium: Chromium) -> Iterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright (its own browsers are never used)."""
    flags = [flag for flag in chromium.flags if flag != "--headless"]
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium.path, headless=True, args=flags
        )
        try:
            yield launched
        finally:
            launched.close()


def new_page(chrome: Browser, console: Console, viewport: ViewportSize, auth: bool = True) -> Page:
    context = chrome.new_context(
        viewport=viewport,
        accept_downloads=True,
        http_credentials={"username": USER, "password": PASSWORD} if auth else None,
        is_mobile=viewport["width"] < 600,
        has_touch=viewport["width"] < 600,
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.on("console", console.record)
    page.on("pageerror", console.page_error)
    return page


def set_editor(page: Page, text: str) -> None:
    """Replace the CodeMirror editor's whole text, as a paste would."""
    page.locator(".cm-content").first.click()
    page.keyboard.press("Control+a")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def editor_value(page: Page) -> str:
    """The editor's text, line by line as drawn (a short flow is drawn whole)."""
    lines: list[str] = page.locator(".cm-content .cm-line").evaluate_all(
        "lines => lines.map(l => l.textContent)"
    )
    return "\n".join(lines)
