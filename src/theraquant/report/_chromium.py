"""Headless Chromium over the DevTools protocol (``--remote-debugging-pipe``; standard library only).

Used to check the rendered report the way a reader's browser sees it (console errors, decoded
images, network requests) and to take screenshots for the documentation. Optional: the report
itself never needs a browser.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

__all__ = ["find_chromium", "Chromium", "FLAGS", "section_screenshots"]

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio")


_TRAMPOLINE = (
    "import os, sys\n"
    "a, b = os.dup(int(sys.argv[1])), os.dup(int(sys.argv[2]))\n"  # dup first: the ends may be 3 or 4
    "os.dup2(a, 3); os.dup2(b, 4)\n"
    "os.set_inheritable(3, True); os.set_inheritable(4, True)\n"  # dup2(3, 3) keeps dup's close-on-exec
    "os.closerange(5, 1024)\n"
    "os.execv(sys.argv[3], sys.argv[3:])\n")


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary (``$CHROMIUM`` first), or ``None``."""
    env = os.environ.get("CHROMIUM")
    if env and Path(env).exists():
        return env
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        path = shutil.which(name)
        if path:
            return path
    return None


class Chromium:
    """One headless Chromium with one page, driven through the DevTools pipe (fds 3 and 4).

    Use as a context manager; ``events`` collects every protocol event of the page.
    """

    def __init__(self, binary: str, *, width: int = 1280, height: int = 900, timeout_s: float = 60.0):
        self.binary, self.width, self.height, self.timeout_s = binary, width, height, timeout_s
        self.events: list[dict] = []
        self._id = 0
        self._inbox: queue.Queue = queue.Queue()

    # ------------------------------------------------------------------ process and pipe
    def __enter__(self) -> "Chromium":
        for attempt in (1, 2):  # a browser that dies while starting (busy machine) gets one more try
            try:
                return self._start()
            except (OSError, RuntimeError, TimeoutError) as exc:
                log = self._log_tail()
                self.__exit__(None, None, None)
                if attempt == 2:
                    raise RuntimeError(f"Chromium ({self.binary}) did not start: {exc}; its log ends: {log}") from exc
        raise AssertionError("unreachable")

    def _log_tail(self) -> str:
        try:
            return Path(self._profile, "stderr.log").read_text(errors="replace")[-600:]
        except OSError:
            return ""

    def _start(self) -> "Chromium":
        self.events, self._id, self._inbox = [], 0, queue.Queue()
        self._profile = tempfile.mkdtemp(prefix="tq-chromium-")
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()

        args = [self.binary, *FLAGS, "--remote-debugging-pipe", f"--user-data-dir={self._profile}",
                f"--window-size={self.width},{self.height}", "about:blank"]
        # The browser reads fd 3 and writes fd 4. A single-threaded Python trampoline moves the pipe
        # ends there and execs it (preexec_fn is unsafe here: pyarrow and others run threads).
        with open(Path(self._profile, "stderr.log"), "wb") as log:
            self._proc = subprocess.Popen([sys.executable, "-c", _TRAMPOLINE, str(to_child_r), str(from_child_w), *args],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=log,
                                          pass_fds=(to_child_r, from_child_w))
        os.close(to_child_r)
        os.close(from_child_w)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        target = self.send("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        self._session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                  session=False)["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.send(f"{domain}.enable")
        self.send("Emulation.setDeviceMetricsOverride", {"width": self.width, "height": self.height,
                                                          "deviceScaleFactor": 1, "mobile": False})
        return self

    def __exit__(self, *exc: Any) -> None:
        if not hasattr(self, "_proc"):
            shutil.rmtree(getattr(self, "_profile", ""), ignore_errors=True)
            return
        try:
            self.send("Browser.close", session=False, wait=False)
        except OSError:
            pass
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self._profile, ignore_errors=True)
        del self._proc

    def _read(self) -> None:
        buf = b""
        while True:
            try:
                chunk = os.read(self._from_child, 1 << 20)
            except OSError:
                break
            if not chunk:
                break
            buf += chunk
            while b"\0" in buf:
                msg, buf = buf.split(b"\0", 1)
                self._inbox.put(json.loads(msg))
        self._inbox.put(None)

    def send(self, method: str, params: dict | None = None, *, session: bool = True, wait: bool = True) -> dict:
        """Send one command; return its result (raises RuntimeError on a protocol error)."""
        self._id += 1
        msg: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self._session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        if not wait:
            return {}
        deadline = time.monotonic() + self.timeout_s
        while True:
            m = self._next(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise RuntimeError(f"{method}: {m['error']}")
                return m.get("result", {})

    def _next(self, deadline: float) -> dict:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("Chromium did not answer in time")
        try:
            m = self._inbox.get(timeout=left)
        except queue.Empty:
            raise TimeoutError("Chromium did not answer in time") from None
        if m is None:
            raise RuntimeError("Chromium closed the DevTools pipe")
        if "method" in m:
            self.events.append(m)
        return m

    def wait_event(self, method: str) -> dict:
        for e in self.events:
            if e["method"] == method:
                return e
        deadline = time.monotonic() + self.timeout_s
        while True:
            m = self._next(deadline)
            if m.get("method") == method:
                return m

    # ------------------------------------------------------------------ page helpers
    def open(self, path: str | Path) -> None:
        """Navigate to a local file and wait for its load event."""
        self.events.clear()
        self.send("Page.navigate", {"url": Path(path).resolve().as_uri()})
        self.wait_event("Page.loadEventFired")

    def evaluate(self, expression: str) -> Any:
        """Value of a JavaScript expression (promises awaited)."""
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise RuntimeError(f"JavaScript error: {r['exceptionDetails']}")
        return r["result"].get("value")

    def errors(self) -> list[str]:
        """Console errors, uncaught exceptions and log errors seen since the last :meth:`open`."""
        out = []
        for e in self.events:
            p = e.get("params", {})
            if e["method"] == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
            elif e["method"] == "Runtime.exceptionThrown":
                out.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:500])
            elif e["method"] == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                out.append("log: " + p["entry"].get("text", ""))
        return out

    def requests(self) -> list[str]:
        """URLs (first 120 characters) of every request the page made since the last :meth:`open`."""
        return [e["params"]["request"]["url"][:120] for e in self.events
                if e["method"] == "Network.requestWillBeSent"]

    def screenshot(self, path: str | Path, *, clip: dict | None = None, full_page: bool = False,
                   scale: float = 1.0) -> Path:
        """PNG of the viewport, of ``clip`` (CSS px: x, y, width, height) or of the whole page."""
        params: dict[str, Any] = {"format": "png", "captureBeyondViewport": True}
        if full_page:
            size = self.send("Page.getLayoutMetrics")["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"]}
        if clip is not None:
            params["clip"] = {**clip, "scale": scale}
        data = self.send("Page.captureScreenshot", params)["data"]
        path = Path(path)
        path.write_bytes(base64.b64decode(data))
        return path


def section_screenshots(html: str | Path, out_dir: str | Path, section_ids, *, max_height: int = 1600,
                        scale: float = 0.8, binary: str | None = None) -> list[Path]:
    """One PNG per report section (its top ``max_height`` CSS px), named ``report-<id>.png``."""
    binary = binary or find_chromium()
    if binary is None:
        raise RuntimeError("no Chromium binary found (apt-get install chromium)")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    with Chromium(binary, width=1280, height=900) as c:
        c.open(html)
        for sid in section_ids:
            box = c.evaluate(
                f"(() => {{ const e = document.getElementById({json.dumps(sid)}); if (!e) return null;"
                " const r = e.getBoundingClientRect();"
                " return {x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width, height: r.height}; })()")
            if box is None:
                continue
            box = {"x": max(0.0, box["x"] - 8), "y": max(0.0, box["y"] - 8), "width": box["width"] + 16,
                   "height": min(box["height"] + 16, max_height)}
            paths.append(c.screenshot(out_dir / f"report-{sid}.png", clip=box, scale=scale))
    return paths
