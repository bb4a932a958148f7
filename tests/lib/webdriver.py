"""Headless Chromium under chromedriver, through just enough of the W3C WebDriver protocol, for the browser-client
tests (noVNC, spice-html5), and a quiet static HTTP server for their pages."""
import base64
import functools
import http.server
import json
import os
import shutil
import subprocess
import threading
import urllib.error
import urllib.request

from deskvm_harness import free_port, wait_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")


# A canvas read back through getImageData as packed RGB, base64 in chunks (the WebDriver reply is JSON).
CANVAS_RGB_JS = """
const canvas = document.querySelector(arguments[0]);
if (!canvas || canvas.width === 0) return [0, 0, ''];
const d = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
const rgb = new Uint8Array(d.length / 4 * 3);
for (let i = 0, j = 0; i < d.length; i += 4, j += 3) { rgb[j] = d[i]; rgb[j + 1] = d[i + 1]; rgb[j + 2] = d[i + 2]; }
let s = '';
for (let i = 0; i < rgb.length; i += 32768) s += String.fromCharCode.apply(null, rgb.subarray(i, i + 32768));
return [canvas.width, canvas.height, btoa(s)];
"""


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class WebDriver:
    """Just enough of the W3C WebDriver protocol (chromedriver over HTTP, JSON bodies) for one headless session."""

    def __init__(self, workdir):
        self.port = free_port()
        self.log = os.path.join(workdir, "chromedriver.log")
        self.proc = subprocess.Popen([CHROMEDRIVER, f"--port={self.port}", f"--log-path={self.log}"],
                                     stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.base = f"http://127.0.0.1:{self.port}"
        if not wait_for(lambda: self._ready(), timeout=20, interval=0.1):
            raise RuntimeError("chromedriver did not start")
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1024,800", "--no-first-run", "--no-default-browser-check",
                     f"--user-data-dir={os.path.join(workdir, 'chromium-profile')}"]}}}}
        self.session = self.call("POST", "/session", caps)["sessionId"]

    def _ready(self):
        try:
            return self.call("GET", "/status").get("ready")
        except (OSError, urllib.error.URLError):
            return False

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"WebDriver {method} {path}: {e.code} {e.read()[:500]!r}") from None

    def navigate(self, url):
        self.call("POST", f"/session/{self.session}/url", {"url": url})

    def script(self, js, *args):
        return self.call("POST", f"/session/{self.session}/execute/sync", {"script": js, "args": list(args)})

    def canvas_rgb(self, selector):
        """The pixels of the canvas matching the CSS SELECTOR as (width, height, packed RGB bytes); (0, 0, b"")
        while there is none or it is empty."""
        w, h, b64 = self.script(CANVAS_RGB_JS, selector)
        return w, h, base64.b64decode(b64)

    def alert_text(self):
        """The text of the open alert/prompt, or None when none is open."""
        try:
            return self.call("GET", f"/session/{self.session}/alert/text")
        except RuntimeError:
            return None

    def dismiss_alert(self):
        self.call("POST", f"/session/{self.session}/alert/dismiss", {})

    def screenshot(self):
        return base64.b64decode(self.call("GET", f"/session/{self.session}/screenshot"))

    def close(self):
        try:
            self.call("DELETE", f"/session/{self.session}")
        except (RuntimeError, OSError, AttributeError):
            pass
        self.proc.kill()
        self.proc.wait()


def serve_directory(directory):
    """Serves DIRECTORY on 127.0.0.1 (a free port) from a thread; returns the server (server_port, shutdown())."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(QuietHandler, directory=directory))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return httpd
