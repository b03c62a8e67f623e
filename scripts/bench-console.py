#!/usr/bin/env python3
"""Drives a headless Chromium through ChromeDriver over each console page and prints how long its
renders took (the console records them in window.__fitrank.renders). Standard library only.

Usage: bench-console.py CONSOLE_URL TOKEN SESSION_ID RENDERS_PER_PAGE
"""
import json
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

ELEMENT = "element-6066-11e4-a52e-4f735466cecf"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Driver:
    def __init__(self):
        self.port = free_port()
        self.proc = subprocess.Popen(["chromedriver", f"--port={self.port}"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(200):
            try:
                self.call("GET", "/status", session=False)
                break
            except OSError:
                time.sleep(0.05)
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1400,1000", "--force-device-scale-factor=1"]}}}}
        self.session = self.call("POST", "/session", caps, session=False)["sessionId"]

    def call(self, method, path, body=None, session=True):
        prefix = f"/session/{self.session}" if session else ""
        data = json.dumps(body).encode() if body is not None else (b"{}" if method == "POST" else None)
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{prefix}{path}", data=data, method=method,
                                     headers={"content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as r:
                return json.load(r)["value"]
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{method} {path}: {json.load(e)['value'].get('message')}") from None

    def js(self, script):
        return self.call("POST", "/execute/sync", {"script": script, "args": []})

    def wait(self, what, script, timeout=120):
        end = time.time() + timeout
        while not self.js(script):
            if time.time() > end:
                raise RuntimeError(f"timed out waiting for {what}")
            time.sleep(0.05)

    def click(self, css):
        self.wait(css, f"return !!document.querySelector({json.dumps(css)})")
        el = self.call("POST", "/element", {"using": "css selector", "value": css})[ELEMENT]
        self.call("POST", f"/element/{el}/click")

    def close(self):
        try:
            self.call("DELETE", "")
        finally:
            self.proc.kill()


def main():
    url, token, session_id, per_page = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    d = Driver()
    try:
        d.call("POST", "/url", {"url": url})
        d.click("#token")
        el = d.call("POST", "/element", {"using": "css selector", "value": "#token"})[ELEMENT]
        d.call("POST", f"/element/{el}/value", {"text": token})
        d.click("#login-button")
        d.wait("the audience page", "return window.__fitrank.renders.length > 0")
        # A fresh load of the page, logged in: from the start of loading to the first painted render.
        loads = []
        for _ in range(5):
            d.call("POST", "/refresh")
            d.wait("the reloaded page", "return !!window.__fitrank && window.__fitrank.renders.length > 0")
            loads.append(d.js("return window.__fitrank.renders[0].since_load_ms"))
        print(f"page load to first render (audience, logged in, 5 loads): median {statistics.median(loads):.0f} ms, "
              f"max {max(loads):.0f} ms")
        print("| page | renders | median ms | p95 ms | max ms | of which fetch (median) |")
        print("|---|---|---|---|---|---|")
        for page in ["audience", f"session/{session_id}", "experiments", "models", "service"]:
            d.js(f"window.__fitrank.renders = []; location.hash = '#/{page}'; return true")
            d.wait(f"{per_page} renders of {page}", f"return window.__fitrank.renders.length >= {per_page}")
            r = d.js("return window.__fitrank.renders")[:per_page]
            totals = sorted(x["total_ms"] for x in r)
            p95 = totals[min(len(totals) - 1, int(round(0.95 * (len(totals) - 1))))]
            fetch = statistics.median(x["fetch_ms"] for x in r)
            print(f"| {page.split('/')[0]} | {len(r)} | {statistics.median(totals):.0f} | {p95:.0f} | "
                  f"{totals[-1]:.0f} | {fetch:.0f} |")
    finally:
        d.close()


if __name__ == "__main__":
    main()
