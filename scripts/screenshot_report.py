"""Screenshot an HTML report with headless Chromium, to look at it as a reader would.

Usage: python scripts/screenshot_report.py REPORT.html OUT.png [--window-size 1400,3000] [--chromium PATH]

Exits 2 when no Chromium binary is found (install one with ``apt-get install -y chromium``),
1 when Chromium ran but wrote no screenshot.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
)


def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium binary to use: ``explicit`` when given, else the first one on PATH."""
    if explicit:
        return explicit if Path(explicit).is_file() or shutil.which(explicit) else None
    return next((path for name in CANDIDATES if (path := shutil.which(name))), None)


def screenshot(html: Path, out: Path, *, chromium: str, window_size: str = "1400,3000", timeout: float = 90) -> Path:
    """Render ``html`` (a local file, no network) to the PNG ``out``; returns ``out``."""
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="mer-chromium-") as profile:
        cmd = [chromium, *FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}", f"--window-size={window_size}",
               html.resolve().as_uri()]
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if not out.is_file():
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
        raise RuntimeError(f"chromium wrote no screenshot {out} (exit {proc.returncode}): {' | '.join(tail)}")
    return out


def main(argv: list[str] | None = None) -> int:
    """Command-line entry: returns the exit status."""
    parser = argparse.ArgumentParser(description="Screenshot an HTML report with headless Chromium.")
    parser.add_argument("html", type=Path, help="the report, e.g. runs/demo/report.html")
    parser.add_argument("out", type=Path, help="PNG to write")
    parser.add_argument("--window-size", default="1400,3000", help="WIDTH,HEIGHT in pixels")
    parser.add_argument("--chromium", default=None, help="Chromium binary [default: first found on PATH]")
    args = parser.parse_args(argv)
    if not args.html.is_file():
        print(f"error: report {args.html} not found", file=sys.stderr)
        return 1
    binary = find_chromium(args.chromium)
    if binary is None:
        print(f"error: no Chromium found (tried {', '.join(CANDIDATES)}); apt-get install -y chromium",
              file=sys.stderr)
        return 2
    try:
        path = screenshot(args.html, args.out, chromium=binary, window_size=args.window_size)
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB) with {binary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
