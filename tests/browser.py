"""A real headless browser for the report tests: Debian's ``chromium``, installed with apt when
missing (once per test session, under a lock). :func:`render` opens a page with the network
cut off, keeps a screenshot and returns what went wrong: console messages and every address
the page tried to fetch."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from filelock import FileLock

from tests.cvm_forks import REPO

ARTIFACTS = REPO / "test-artifacts"  # screenshots the tests keep (not in git)
# the browser's own services (updates, accounts, clock), not the page's requests
BROWSER_HOSTS = ("google.com/", "googleapis.com/", "gvt1.com/")
QUIET = (
    "--headless",
    "--no-sandbox",  # chromium's sandbox refuses to start as root
    "--disable-gpu",
    "--hide-scrollbars",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--host-resolver-rules=MAP * ~NOTFOUND",  # offline: no name resolves
    "--enable-logging=stderr",
    "--v=0",
)


def chromium() -> str:
    """The path of ``chromium``; installed from Debian's packages when missing."""
    with FileLock(Path(tempfile.gettempdir()) / "cvm-tests-chromium.lock"):
        found = shutil.which("chromium")
        if found:
            return found
        if os.geteuid() != 0 or not shutil.which("apt-get"):
            pytest.fail("the report tests need chromium: apt-get install -y chromium")
        env = os.environ | {"DEBIAN_FRONTEND": "noninteractive"}
        for command in (
            ["apt-get", "update", "-qq"],
            ["apt-get", "install", "-y", "-qq", "chromium"],
        ):
            done = subprocess.run(command, capture_output=True, text=True, env=env)
            assert done.returncode == 0, done.stderr[-2000:]
        return shutil.which("chromium")


def render(page: Path, screenshot: str, height: int = 4000) -> dict[str, list[str]]:
    """Open ``page`` offline at 1280 pixels wide, keep a screenshot as
    ``test-artifacts/<screenshot>``; returns the page's ``console`` messages and the addresses
    it ``fetched`` (anything but the page itself)."""
    ARTIFACTS.mkdir(exist_ok=True)
    shot, netlog = ARTIFACTS / screenshot, ARTIFACTS / f"{Path(screenshot).stem}.netlog.json"
    shot.unlink(missing_ok=True)
    done = subprocess.run(
        [
            chromium(),
            *QUIET,
            f"--window-size=1280,{height}",
            f"--screenshot={shot}",
            f"--log-net-log={netlog}",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and shot.is_file(), done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    events = json.loads(netlog.read_text())["events"]
    netlog.unlink()
    urls = {
        e["params"][key]
        for e in events
        for key in ("url", "original_url")
        if key in e.get("params", {})
    }
    own = page.resolve().as_uri()
    fetched = sorted(u for u in urls if u != own and not any(h in u for h in BROWSER_HOSTS))
    return {"console": console, "fetched": fetched}
