"""The overview's "which identifier to trust": known answers on synthetic boards made by the real verdict."""
import numpy as np

from bench.leaderboard import _trust_rows, not_counted, trusted
from bench.tracks.base import Metric, verdict

METRIC = Metric("AUPRC", higher_is_better=True, delta=0.02)


def _board(name: str, means: dict, seeds: int = 3, spread: float = 0.002, rng_seed: int = 0) -> dict:
    """A board entry as the overview reads it: ``verdict``'s summary of rows around ``means``."""
    rng = np.random.default_rng(rng_seed)
    rows = [(m, "x", s, mu + rng.normal(0, spread)) for s in range(seeds) for m, mu in means.items()]
    return {"board": name, "verdict": verdict(rows, METRIC)[2]}


FIELD = {"aum": 0.80, "loss": 0.795, "el2n": 0.60, "grand": 0.55, "forgetting": 0.50, "vog": 0.45, "random": 0.10}


def _answer(entries) -> list:
    rows, _ = _trust_rows({"label noise": entries})
    return rows[0]


def test_the_answer_lists_methods_as_good_as_the_best_and_never_the_control():
    board = _board("a/detection", FIELD)
    assert not_counted(board["verdict"]) is None and board["verdict"]["answers"]
    question, answer, cheapest, evidence = _answer([board])
    assert answer == "aum (1/1), loss (1/1)" and "random" not in answer
    assert "[a/detection](a/detection.md): 1 setting(s) × 3 seed(s)" in evidence


def test_a_board_with_one_method_changes_no_answer():
    board = _board("a/detection", FIELD)
    lone = _board("b/pathways", {"stragglers": 0.9})
    assert not_counted(lone["verdict"]) == "1 method"
    rows, left_out = _trust_rows({"label noise": [board, lone]})
    assert rows[0][:3] == _answer([board])[:3]
    assert left_out == ["label noise: [b/pathways](b/pathways.md): not counted: 1 method"]


def test_a_method_missing_from_a_board_is_neither_excluded_nor_credited():
    first = _board("a/detection", FIELD)
    second = _board("c/detection", {m: v for m, v in FIELD.items() if m != "loss"}, rng_seed=1)
    assert trusted([first, second]) == [("aum", 2), ("loss", 1)]


def test_a_board_where_nothing_beats_random_answers_nothing():
    flat = _board("d/detection", {m: 0.10 + 0.001 * i for i, m in enumerate(FIELD)}, rng_seed=2)
    assert not flat["verdict"]["answers"] and not_counted(flat["verdict"]) is None
    question, answer, cheapest, evidence = _answer([flat])
    assert "unanswered" in answer and cheapest == "–"
    assert "no identifier beats the control on [d/detection](d/detection.md)" in evidence
    # beside a board that answers, it takes nothing from that board's answer
    assert _answer([_board("a/detection", FIELD), flat])[1] == "aum (1/1), loss (1/1)"


def test_one_seed_is_not_counted_and_leaves_the_question_unanswered():
    single = _board("e/detection", FIELD, seeds=1)
    assert not_counted(single["verdict"]) == "1 seed"
    assert _answer([single])[1] == "**unanswered**: no counted board"


def test_every_track_declares_what_its_verdicts_rank():
    from bench.tracks import TRACKS

    for name, track in TRACKS.items():
        assert isinstance(track.METRIC, Metric) and track.METRIC.delta > 0 and track.METRIC.control == "random", name
        assert callable(track.verdict_rows), name
