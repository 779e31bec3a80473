"""Render a page in a real headless browser (Debian's chromium) for the report tests."""
import os
import re
import shutil
import subprocess

import pytest

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
         "--hide-scrollbars", "--mute-audio"]


def chromium() -> str:
    """Path of the chromium binary, or skip (install it with `apt-get install -y chromium`)."""
    for name in (os.environ.get("KERASRECIPE_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    pytest.skip("no headless browser: install Debian's chromium (apt-get install -y chromium)")


def _run(args, tmp_path, timeout=120):
    profile = tmp_path / "chromium-profile"
    profile.mkdir(exist_ok=True)
    cmd = [chromium()] + FLAGS + [f"--user-data-dir={profile}"] + args
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "HOME": str(tmp_path)})
    assert proc.returncode == 0, f"chromium failed ({proc.returncode}): {proc.stderr[-2000:]}"
    return proc


def render_check(html_path, tmp_path) -> dict:
    """Load the page, let its scripts run, and return the #kr-render-check attributes."""
    url = "file://" + os.path.abspath(html_path)
    proc = _run(["--virtual-time-budget=10000", "--dump-dom", url], tmp_path)
    m = re.search(r'<span id="kr-render-check"([^>]*)>', proc.stdout)
    assert m, "the rendered DOM has no #kr-render-check element: " + proc.stdout[-500:]
    return dict(re.findall(r'data-([a-z]+)="([^"]*)"', m.group(1)))


def screenshot(html_path, tmp_path, width=1280, height=2400):
    """A PNG screenshot of the top of the page; returns its path."""
    out = tmp_path / "screenshot.png"
    url = "file://" + os.path.abspath(html_path)
    _run([f"--window-size={width},{height}", f"--screenshot={out}", url], tmp_path)
    assert out.exists() and out.stat().st_size > 0
    return out


def assert_renders(html_path, tmp_path, min_images=1):
    """The page renders without script errors and every <img> is present and decoded."""
    with open(html_path, encoding="utf-8") as f:
        n_img = len(re.findall(r"<img\b", f.read()))
    check = render_check(html_path, tmp_path)
    assert check.get("status") == "ok", f"render check: {check}"
    assert int(check["images"]) == n_img >= min_images, check
    assert int(check["decoded"]) == n_img, check
    assert check.get("failed", "") == "" and check.get("errors", "") == "", check
    return check
