"""The detection board says, per kind, whether any setting tells the methods apart."""
import pytest

from bench.tracks import detection


def _records(auprc: dict) -> list[dict]:
    """Hand-made records: ``auprc[(kind, rate)][method]`` for seeds 0-2 (a small per-seed wobble)."""
    return [{"method": method, "seed": seed, "dataset": "digits", "config": {"type": kind, "rate": rate},
             "metrics": {"auprc": value + 0.001 * seed, "auroc": 0.5, "precision_at_m": value, "baseline": rate},
             "cost": {"scoring_s": 0.1, "shared_s": 1.0, "standalone_s": 2.0}}
            for (kind, rate), values in auprc.items() for method, value in values.items() for seed in range(3)]


def test_each_kind_names_its_most_separating_setting_and_whether_it_reaches_the_bar():
    records = _records({("label-uniform", 0.1): {"aum": 0.99, "loss": 0.99, "random": 0.10, "el2n": 0.98,
                                                 "holdout": 0.985},
                        ("label-uniform", 0.4): {"aum": 0.97, "loss": 0.96, "random": 0.40, "el2n": 0.955,
                                                 "holdout": 0.96},
                        ("near-ood", 0.1): {"aum": 0.60, "loss": 0.30, "random": 0.10, "el2n": 0.20,
                                            "holdout": 0.25}})
    text = detection.report(records).markdown
    section = text.split("### Which settings tell the methods apart")[1].split("###")[0]
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:5]]
            for line in section.splitlines() if line.startswith("| ") and "kind" not in line}
    # label-uniform: best − median 0.99 − 0.985 = 0.005 at 0.1 and 0.97 − 0.96 = 0.01 at 0.4: the wider, and short
    assert rows["label-uniform"] == ["0.4", "0.010", "no"]
    assert rows["near-ood"] == ["0.1", "0.350", "yes"]
    assert "No setting tried here separates the methods on label-uniform." in section


def _checked(records: list[dict], hard: dict) -> list[dict]:
    """The records with a planting check: valid, and hard where ``hard[(kind, rate)]`` says so."""
    for r in records:
        key = (r["config"]["type"], r["config"]["rate"])
        r["planting_check"] = {"holds": True, "hard": hard[key], "summary": f"{key[0]}: checked"}
    return records


FIELD = {"aum": 0.9, "loss": 0.88, "el2n": 0.6, "holdout": 0.5, "grand": 0.45, "random": 0.10}


def test_planted_samples_that_are_not_hard_answer_nothing():
    records = _checked(_records({("atypical", 0.1): FIELD, ("label-uniform", 0.1): FIELD,
                                 ("label-pair", 0.1): {m: v / 2 for m, v in FIELD.items()}}),
                       {("atypical", 0.1): False, ("label-uniform", 0.1): True, ("label-pair", 0.1): False})
    report = detection.report(records)
    assert "atypical" not in report.verdicts and "label noise" in report.verdicts
    assert "**atypical: nothing to detect** (the planting check: atypical 0.1: not hard on some seed)" in report.markdown
    assert "**label-pair 0.1: not hard on some seed: nothing to detect; left out of the overall verdicts.**" in \
        report.markdown
    # the label-noise verdict ranks the hard cell alone: its values are label-uniform's, not halved by label-pair
    assert report.verdicts["label noise"]["methods"]["aum"]["value"] == pytest.approx(0.901)
    assert detection.verdict_rows(records).keys() == {"label noise"}


def test_a_check_without_hardness_does_not_count():
    records = _records({("atypical", 0.1): FIELD})
    for r in records:
        r["planting_check"] = {"holds": True, "summary": "atypical: checked"}  # made before the hardness check
    assert detection.unanswered(records) == {"atypical": "atypical 0.1: hardness not measured"}
