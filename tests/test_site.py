"""The leaderboard site: every committed board is in ``index.html``, which a real browser opens
from disk, and whose tables sort."""
import re
import shutil
import subprocess
from html.parser import HTMLParser

import pytest

from bench.site import write_site
from conftest import ROOT

BROWSER = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    boards = tmp_path_factory.mktemp("site") / "leaderboards"
    shutil.copytree(ROOT / "leaderboards", boards, ignore=shutil.ignore_patterns("index.html"))
    return boards, write_site(boards)


class _Sections(HTMLParser):
    def __init__(self):
        super().__init__()
        self.sections, self.images = [], 0

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "section":
            self.sections.append(attrs.get("id"))
        if tag == "img" and attrs.get("src", "").startswith("data:image/png;base64,"):
            self.images += 1


def test_every_board_is_on_the_page_with_its_plots_inline(site):
    boards, page = site
    parser = _Sections()
    parser.feed(page.read_text())
    expected = sorted(p for p in boards.glob("*/*.md"))
    assert expected and len(parser.sections) == len(expected) + 1  # and the overview
    for path in expected:
        assert re.sub(r"[^A-Za-z0-9_-]", "_", f"{path.parent.name}--{path.stem}") in parser.sections
    assert parser.images == len(list(boards.glob("*/*.png")))
    assert not re.search(r'<(img|script|link)[^>]+(src|href)="(https?:)?//', page.read_text())  # nothing fetched


def _first_table(dom: str) -> tuple[str, list[str]]:
    table = re.search(r'<table id="([^"]+)"[^>]*>(.*?)</table>', dom, re.S)
    rows = re.findall(r"<tr>\s*<td>([^<]*)</td>", table.group(2))
    return table.group(1), [r.strip() for r in rows]


@pytest.mark.skipif(BROWSER is None, reason="no headless Chromium (Debian package 'chromium'); .ci/run installs it")
def test_a_headless_browser_opens_the_page_and_sorts_a_table(site, tmp_path):
    _, page = site
    table, rows = _first_table(page.read_text())

    def dom(fragment: str) -> str:
        result = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom",
                                 f"file://{page}{fragment}"], capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    for order in ("asc", "desc"):
        got_table, got = _first_table(dom(f"#sort={table}:0:{order}"))
        assert got_table == table and sorted(got) == sorted(rows)
        assert got == sorted(rows, key=str.lower, reverse=order == "desc")
    assert f'data-sorted="0:desc"' in dom(f"#sort={table}:0:desc")


def test_plots_are_byte_identical_when_their_data_are(tmp_path):
    import numpy as np

    from bench.leaderboard import _save_figure
    from bench.tracks.detection import _heatmap

    matrix = np.array([[0.9, 0.5], [0.4, np.nan]])
    for name in ("a.png", "b.png"):
        _save_figure(_heatmap(matrix, ["m1", "m2"], ["t1", "t2"]), tmp_path / name)
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()
    assert b"Date" not in (tmp_path / "a.png").read_bytes()
