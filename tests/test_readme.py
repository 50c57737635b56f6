"""The README's generated parts stay true."""
import contextlib
import io
import re

from bench.cli import main
from conftest import ROOT


def _block(text: str, name: str) -> str:
    match = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", text, re.S)
    assert match, f"README lacks the {name} block"
    return match.group(1).strip()


def test_methods_table_is_the_registry_listing():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["list", "--details", "--markdown"]) == 0
    readme = (ROOT / "README.md").read_text()
    assert _block(readme, "methods") == out.getvalue().strip(), \
        "regenerate with: python -m bench report --readme"


def test_leaderboard_excerpt_is_the_generated_overview():
    readme = (ROOT / "README.md").read_text()
    overview = (ROOT / "leaderboards" / "README.md").read_text()
    table = "\n".join(line for line in overview.splitlines() if line.startswith("|"))
    assert _block(readme, "leaderboard") == table.replace("](", "](leaderboards/"), \
        "regenerate with: python -m bench report --readme"
