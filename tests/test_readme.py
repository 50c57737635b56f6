"""The README and docs stay true: generated blocks match the registry and the boards, and every
command, flag and track setting they name is one the command line accepts."""
import contextlib
import io
import re
import shlex

import pytest

from bench.cli import build_parser, main, parse_options
from bench.leaderboard import board_times, recipe_cards, top_five
from bench.tracks import TRACKS
from conftest import ROOT

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: flags of other programs that the docs name (pip, pytest)
OTHER_FLAGS = {"--benchmark-enable", "--quiet", "-e"}


def _block(text: str, name: str) -> str:
    match = re.search(rf"<!-- {name}:start -->\n(.*?)<!-- {name}:end -->", text, re.S)
    assert match, f"lacks the {name} block"
    return match.group(1).strip()


def test_readme_is_one_page():
    assert len((ROOT / "README.md").read_bytes()) <= 10_000


def test_methods_table_is_the_registry_listing():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert main(["list", "--details", "--markdown"]) == 0
    assert _block((ROOT / "docs" / "methods.md").read_text(), "methods") == out.getvalue().strip(), \
        "regenerate with: python -m bench report --readme"


def test_recipe_cards_are_the_boards_headers():
    """docs/recipes.md quotes each recipe's accuracies only from the committed boards."""
    block = _block((ROOT / "docs" / "recipes.md").read_text(), "cards")
    assert block == recipe_cards(ROOT / "leaderboards", "../leaderboards/").strip(), \
        "regenerate with: python -m bench report --readme"
    assert block.count("\n") >= 3, "the committed boards state their estimation models"


def test_scale_figures_are_the_timed_board_runs():
    """docs/scale.md quotes each part's wall time and peak RSS only as scripts/boards.sh kept them."""
    block = _block((ROOT / "docs" / "scale.md").read_text(), "times")
    assert block == board_times(ROOT / "leaderboards").strip(), "regenerate with: python -m bench report --readme"


def test_board_times_render_the_scripts_file(tmp_path):
    (tmp_path / "boards-times.tsv").write_text("part\twall\tpeak_rss_kb\tdate\tcommit\n"
                                               "digits\t8:24.31\t1550000\t2026-12-02\tabc123\n")
    row = board_times(tmp_path).splitlines()[2]
    cells = [cell.strip() for cell in row.strip("|").split("|")]
    assert cells == ["`digits`", "8:24.31", "1.55 GB", "abc123, 2026-12-02"]
    assert "has been timed yet" in board_times(tmp_path / "elsewhere")


def test_leaderboard_block_is_the_boards_top_five():
    assert _block((ROOT / "README.md").read_text(), "leaderboard") == \
        top_five(ROOT / "leaderboards", "leaderboards/").strip(), "regenerate with: python -m bench report --readme"


def _commands():
    for path in DOCS:
        text = path.read_text()
        for block in re.findall(r"```bash\n(.*?)```", text, re.S):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split("#")[0].strip() if not line.strip().startswith("python -m bench") else line
                line = re.sub(r"\s+#.*$", "", line)
                if line.startswith("python -m bench ") or line.startswith("hardbench "):
                    yield path.name, line
        for inline in re.findall(r"`((?:python -m bench|hardbench) [^`]+)`", text):
            yield path.name, inline


@pytest.mark.parametrize("where, command", list(_commands()))
def test_every_documented_command_parses(where, command):
    words = shlex.split(command)
    words = words[3:] if words[0] == "python" else words[1:]
    if words[0] == "COMMAND":
        return
    try:
        args = build_parser().parse_args(words)
    except SystemExit:
        pytest.fail(f"{where}: `{command}` does not parse")
    if getattr(args, "option", None):
        for track, values in parse_options(args.option).items():
            TRACKS[track].Settings.build(values).validate()


def _flags(parser) -> set[str]:
    flags = set()
    for action in parser._actions:
        flags |= set(action.option_strings)
        if isinstance(action.choices, dict):  # the subcommands
            for sub in action.choices.values():
                flags |= _flags(sub)
    return flags


def test_every_documented_flag_and_setting_exists():
    flags = _flags(build_parser())
    settings = {f"{name}.{key}" for name, track in TRACKS.items() for key in track.Settings().to_dict()}
    for path in DOCS:
        text = path.read_text()
        for flag in set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", text)) - OTHER_FLAGS - {"--slurm-"}:
            if flag in ("--pool-size",):  # named as renamed, with its hint
                continue
            assert flag in flags, f"{path.name} names {flag}, which no command accepts"
        for track, key in re.findall(r"--option ([a-z]+)\.([a-z_]+)=", text):
            assert f"{track}.{key}" in settings, f"{path.name} names the setting {track}.{key}"
