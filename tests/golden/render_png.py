"""Render the golden PR comments to PNG as GitHub shows them, for review by eye.

GFM through cmark-gfm (the library GitHub's renderer is built on) with GitHub's stylesheet
(github-markdown-css), each ```mermaid block drawn by mermaid-cli in Chromium, the page captured whole.
<details> sections are opened (--closed leaves them as a reader first sees them).

One-time setup (npm and Debian packages; nothing else is downloaded):
    apt-get install -y chromium
    mkdir -p ~/.cache/costgate-render && cd ~/.cache/costgate-render && \
        PUPPETEER_SKIP_DOWNLOAD=1 npm install @mermaid-js/mermaid-cli github-markdown-css

Usage: python tests/golden/render_png.py [--out DIR] [--npm DIR] [--chromium PATH] [--closed] [CASE ...]
"""
from __future__ import annotations

import argparse
import html
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import cmarkgfm
from cmarkgfm.cmark import Options

HERE = Path(__file__).parent
FENCE = re.compile(r"^```mermaid\n(.*?)^```\n", re.S | re.M)
SHOT = r"""
const puppeteer = require('puppeteer');
(async () => {
  const [page_file, png, chromium] = process.argv.slice(1);
  const browser = await puppeteer.launch({executablePath: chromium, args: ['--no-sandbox', '--disable-gpu']});
  const page = await browser.newPage();
  await page.setViewport({width: 1012, height: 800, deviceScaleFactor: 1});
  await page.goto('file://' + page_file, {waitUntil: 'networkidle0'});
  await page.screenshot({path: png, fullPage: true});
  await browser.close();
})();
"""


def render(case: Path, out: Path, npm: Path, chromium: str, closed: bool) -> Path:
    body = case.read_text(encoding="utf-8")
    config = out / "puppeteer.json"
    config.write_text(json.dumps({"executablePath": chromium, "args": ["--no-sandbox", "--disable-gpu"]}))
    charts = 0

    def chart(match: re.Match[str]) -> str:
        nonlocal charts
        charts += 1
        source = out / f"{case.stem}-{charts}.mmd"
        image = out / f"{case.stem}-{charts}.svg"
        source.write_text(match.group(1), encoding="utf-8")
        subprocess.run([str(npm / "node_modules" / ".bin" / "mmdc"), "-q", "-p", str(config), "-i", str(source),
                        "-o", str(image), "-b", "white"], check=True)
        return f'<img alt="chart" src="{image.name}">\n'

    body = FENCE.sub(chart, body)
    page = cmarkgfm.github_flavored_markdown_to_html(body, options=Options.CMARK_OPT_UNSAFE)
    if not closed:
        page = page.replace("<details>", "<details open>")
    css = (npm / "node_modules" / "github-markdown-css" / "github-markdown-light.css").read_text(encoding="utf-8")
    document = out / f"{case.stem}.html"
    document.write_text(f"<!doctype html><meta charset='utf-8'><title>{html.escape(case.stem)}</title>"
                        f"<style>{css} body {{margin: 0; background: #fff}} .markdown-body {{max-width: 880px; "
                        f"padding: 16px 24px; border: 1px solid #d0d7de; border-radius: 6px; margin: 16px}}</style>"
                        f"<article class='markdown-body'>{page}</article>", encoding="utf-8")
    png = out / f"{case.stem}.png"
    subprocess.run(["node", "-e", SHOT, str(document.resolve()), str(png.resolve()), chromium], cwd=npm, check=True)
    return png


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("cases", nargs="*", help="golden names (default: every tests/golden/*.md)")
    parser.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "costgate-comments")
    parser.add_argument("--npm", type=Path, default=Path.home() / ".cache" / "costgate-render",
                        help="the folder npm installed mermaid-cli and github-markdown-css into")
    parser.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser") or "")
    parser.add_argument("--closed", action="store_true", help="leave <details> sections closed")
    args = parser.parse_args()
    if not (args.npm / "node_modules" / ".bin" / "mmdc").exists() or not args.chromium:
        print(__doc__, file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    cases = [HERE / f"{name}.md" for name in args.cases] or sorted(HERE.glob("*.md"))
    for case in cases:
        print(render(case, args.out, args.npm, args.chromium, args.closed))
    return 0


if __name__ == "__main__":
    sys.exit(main())
