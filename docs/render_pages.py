"""The docs' example pages, written by the commands they show, and their pictures as headless Chromium draws them.

    python docs/render_pages.py            # write docs/examples/worksheet.html and docs/images/worksheet.png
    python docs/render_pages.py --check    # exit 1 where the committed page is not what sce writes today

The page is written by ``sce exercise`` itself (the same seed gives the same bytes); the picture is Chromium's
screenshot of it (Debian's ``chromium``, driven by playwright, as the tests drive it), at a fixed window size and
scale, with the page's fonts and nothing fetched. The tests check that the committed page is what sce writes,
and that the picture is what Chromium draws of it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

DOCS = Path(__file__).resolve().parent
#: The worksheet the docs show: three classes, two exercises, blanks and choices.
WORKSHEET_COMMAND = ("exercise", "--count", "2", "--seed", "7", "--classes", "3", "--blanks", "--choices")
WORKSHEET_PAGE = DOCS / "examples" / "worksheet.html"
WORKSHEET_PICTURE = DOCS / "images" / "worksheet.png"
#: The window the picture is taken in: the page's first screen, as the handout's picture shows it.
WINDOW = {"width": 820, "height": 1400}
CHROMIUM = os.environ.get("SCE_TEST_CHROMIUM", "/usr/bin/chromium")


def worksheet_page() -> str:
    """The worksheet page as ``sce exercise`` writes it today."""
    with tempfile.TemporaryDirectory() as folder:
        sheet, key = os.path.join(folder, "worksheet.html"), os.path.join(folder, "key.csv")
        command = [sys.executable, "-m", "sce", *WORKSHEET_COMMAND, "-o", sheet, "--answers", key]
        subprocess.run(command, check=True, capture_output=True, env={**os.environ, "NO_COLOR": "1"})
        return Path(sheet).read_text(encoding="utf-8")


def screenshot(page_path: Path, browser: object | None = None) -> bytes:
    """Chromium's picture of the page's first screen (``browser``: a playwright browser to use, else one
    launched for it)."""
    if browser is None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as playwright:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            try:
                return screenshot(page_path, launched)
            finally:
                launched.close()
    context = browser.new_context(viewport=WINDOW, device_scale_factor=1)  # type: ignore[attr-defined]
    try:
        tab = context.new_page()
        tab.route("**/*", lambda route: route.continue_() if route.request.url == page_path.as_uri() else route.abort())
        tab.goto(page_path.as_uri(), wait_until="load")
        return bytes(tab.screenshot(full_page=False, animations="disabled", caret="hide"))
    finally:
        context.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--check", action="store_true", help="compare the committed page; write nothing")
    arguments = parser.parse_args()
    page = worksheet_page()
    if arguments.check:
        if WORKSHEET_PAGE.read_text(encoding="utf-8") != page:
            print(f"stale: run python docs/render_pages.py ({WORKSHEET_PAGE} is not what sce writes)")
            return 1
        return 0
    WORKSHEET_PAGE.write_text(page, encoding="utf-8")
    WORKSHEET_PICTURE.write_bytes(screenshot(WORKSHEET_PAGE))
    return 0


if __name__ == "__main__":
    sys.exit(main())
