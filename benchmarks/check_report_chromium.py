#!/usr/bin/env python
"""Open a robustreid HTML report in headless Chromium, check that it rendered, optionally take a screenshot.

    python benchmarks/check_report_chromium.py runs/demo/report.html --screenshot report.png

Checks (exit status 1 if any fails):
- the page's own render check (an inline script that counts tables and images after load and lists images whose
  natural size is zero) reports ``ok`` in the DOM dumped by Chromium;
- the dumped DOM contains the expected tables and images (at least ``--min-tables`` / ``--min-images``);
- the screenshot (when asked) is a non-blank PNG.

Needs the Debian package ``chromium`` (``apt-get install -y chromium``); pass ``--chromium PATH`` otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Dict, List, Optional

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars", "--virtual-time-budget=10000"]


def find_chromium(explicit: Optional[str] = None) -> Optional[str]:
    if explicit:
        return explicit
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        p = shutil.which(name)
        if p:
            return p
    return "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else None


def _run(chromium: str, args: List[str], timeout: float) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="rr-chromium-") as prof:
        cmd = [chromium, *FLAGS, f"--user-data-dir={prof}", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def dump_dom(chromium: str, html_path: Path, timeout: float = 120) -> str:
    res = _run(chromium, ["--dump-dom", html_path.resolve().as_uri()], timeout)
    if res.returncode != 0 or "<html" not in res.stdout:
        raise RuntimeError(f"chromium --dump-dom failed (rc {res.returncode}): {res.stderr[-800:]}")
    return res.stdout


def screenshot(chromium: str, html_path: Path, out_png: Path, width: int = 1400, height: int = 3000,
               timeout: float = 120) -> None:
    out_png.parent.mkdir(parents=True, exist_ok=True)
    res = _run(chromium, [f"--screenshot={out_png.resolve()}", f"--window-size={width},{height}",
                          html_path.resolve().as_uri()], timeout)
    if res.returncode != 0 or not out_png.exists():
        raise RuntimeError(f"chromium --screenshot failed (rc {res.returncode}): {res.stderr[-800:]}")


def check_dom(dom: str, min_tables: int = 1, min_images: int = 1) -> Dict[str, object]:
    """Parse the rendered DOM: the status element written by the page's script, tables, images."""
    m = re.search(r'<div[^>]*id="render-status"[^>]*>', dom)
    attrs = dict(re.findall(r'(data-[a-z]+)="([^"]*)"', m.group(0))) if m else {}
    text = re.search(r'id="render-status"[^>]*>([^<]*)<', dom)
    n_tables = len(re.findall(r"<table\b", dom))
    n_images = len(re.findall(r"<img\b", dom))
    problems = []
    if attrs.get("data-status") != "ok":
        problems.append(f"page render check says {attrs.get('data-status', 'nothing')!r}: "
                        f"{text.group(1) if text else ''}")
    if n_tables < min_tables:
        problems.append(f"{n_tables} tables in the DOM, expected >= {min_tables}")
    if n_images < min_images:
        problems.append(f"{n_images} images in the DOM, expected >= {min_images}")
    if attrs.get("data-images") and int(attrs["data-images"]) != n_images:
        problems.append(f"script counted {attrs['data-images']} images, the DOM has {n_images}")
    if re.search(r'(src|href)="(https?:)?//', dom):
        problems.append("the page references an external resource")
    return {"ok": not problems, "problems": problems, "tables": n_tables, "images": n_images,
            "status": attrs.get("data-status"), "status_text": text.group(1) if text else ""}


def check_png(path: Path) -> Dict[str, object]:
    from PIL import Image
    import numpy as np

    with Image.open(path) as im:
        arr = np.asarray(im.convert("RGB"))
    return {"size": arr.shape[:2], "std": float(arr.std()), "ok": arr.size > 0 and float(arr.std()) > 5.0}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[1])
    ap.add_argument("report", type=Path)
    ap.add_argument("--screenshot", type=Path, default=None, help="write a PNG screenshot here")
    ap.add_argument("--width", type=int, default=1400)
    ap.add_argument("--height", type=int, default=3000)
    ap.add_argument("--chromium", default=None)
    ap.add_argument("--min-tables", type=int, default=2)
    ap.add_argument("--min-images", type=int, default=3)
    args = ap.parse_args(argv)
    if not args.report.is_file():
        print(f"error: {args.report} is not a file", file=sys.stderr)
        return 2
    chromium = find_chromium(args.chromium)
    if chromium is None:
        print("error: no chromium found; install it with `apt-get install -y chromium` or pass --chromium",
              file=sys.stderr)
        return 2
    dom = dump_dom(chromium, args.report)
    res = check_dom(dom, args.min_tables, args.min_images)
    print("| check | result |\n|---|---|")
    print(f"| tables in rendered DOM | {res['tables']} |")
    print(f"| images in rendered DOM | {res['images']} |")
    print(f"| page render status | {res['status']} — {res['status_text']} |")
    ok = bool(res["ok"])
    if args.screenshot:
        screenshot(chromium, args.report, args.screenshot, args.width, args.height)
        png = check_png(args.screenshot)
        print(f"| screenshot | {args.screenshot} {png['size'][1]}×{png['size'][0]}, pixel std {png['std']:.1f} |")
        ok = ok and bool(png["ok"])
    for p in res["problems"]:
        print(f"PROBLEM: {p}")
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
