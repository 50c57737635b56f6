"""``bench compare`` must rank what the board ranks: the check every track's end-to-end test runs."""
from bench.compare import method_against_field
from bench.leaderboard import hardness_records


def assert_compare_agrees_with_the_board(results, track, records) -> None:
    """For every question the track's board answers on ``records``, ``compare`` of the board's best
    puts it first on that board and question."""
    report = track.report(hardness_records([r for r in records if not r["method"].startswith("_")]))
    assert report.verdicts, "the board answers no question"
    for question, summary in report.verdicts.items():
        text = method_against_field(summary["best"], results)
        cells = [[c.strip() for c in line.strip("|").split("|")] for line in text.splitlines() if line.startswith("|")]
        rows = [c for c in cells if c[0].endswith(f"/{track.NAME}") and c[1] == question]
        assert rows, text
        assert all(c[5].startswith("1 of ") for c in rows), (summary["best"], text)
