"""Re-read the verdicts of boards made before the equivalence rule from their printed tables.

``bench report`` remakes a board's verdict from its records. A committed board whose records are
not at hand (they live in the ``results/`` cache of the machine that made it) keeps the verdict
of the rule it was made under: "not significantly worse". This script gives such a board's
``.ranks.json`` the three states of the current rule (``bench.metrics.state_of``), computed from
the board's own printed verdict table: each method's paired difference to the best, its 95%
half-width and Holm p (3 decimals, as printed), with the pair count from the table's evidence
("S setting(s) × K seed(s)"). The overview marks such a verdict as re-read from its table. A
board remade from its records replaces all of this.

    python scripts/verdicts_from_tables.py [leaderboards]

Rules that need what no table prints:
- a board whose printed best is the control (``random``): nothing beat it, so it answers nothing;
- stability: the printed replicates are all pairs of seeds; the rule counts disjoint pairs only
  (S // 2 of S seeds), so the replicate count is taken as that, and the printed intervals (over
  pairs that share seeds) are not used;
- the atypical question is dropped: its planted samples' hardness was not measured then.
"""
from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

from scipy import stats

from bench.metrics import pairs_to_settle, state_of
from bench.store import write_json
from bench.tracks import TRACKS

#: the verdict headings that differ from the question they answer
HEADINGS = {"split": "split effect", "pathways": "pathway effect"}
CELL = re.compile(r"^([-+]?\d+(?:\.\d+)?)(?: ± (\d+(?:\.\d+)?|nan))?(?: \(p_Holm ([\d.e+-]+|nan)\))?$")


def _tables(text: str, question: str) -> list[list[str]] | None:
    """The rows of the first verdict table of ``question`` in a board's markdown."""
    heading = re.compile(rf"^(### Verdict: {re.escape(question)}|#### {re.escape(question)} \()", re.M)
    match = heading.search(text)
    if not match:
        return None
    lines = text[match.end():].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| method"))
    head = [c.strip() for c in lines[start].strip("|").split("|")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append(dict(zip(head, (c.strip() for c in line.strip("|").split("|")))))
    return rows


def reverdict(old: dict, rows: list[dict], metric, seeds_override: int | None = None) -> dict:
    settings, seeds = map(int, re.findall(r"(\d+) (?:setting|seed)", old["evidence"]))
    if seeds_override is not None:
        settings, seeds = 1, seeds_override
    n = settings * seeds
    control = metric.control
    methods = {}
    for row in rows:
        name, cell = row["method"], row["vs best (paired)"]
        if cell == "best":
            entry = {"test": "best", "diff": 0.0, "ci": math.nan, "p_holm": math.nan}
        else:
            diff, half, p = CELL.match(cell).groups()
            entry = {"test": "paired", "diff": float(diff),
                     "ci": float(half) if half and seeds_override is None else math.nan,
                     "p_holm": float(p) if p else math.nan}
        entry["n"] = n
        methods[name] = entry
    best = next(m for m, e in methods.items() if e["test"] == "best")
    out = {m: {k: old["methods"][m][k] for k in ("value", "rank", "standalone_s")} for m in methods}
    if best == control:  # nothing beat the control; the printed differences are to it
        versus = {"diff": -max(e["diff"] for m, e in methods.items() if m != control), "ci": math.nan, "n": n,
                  "beats": False}
        states = {m: {"half": "undecided", "double": "undecided", "state": "undecided"} for m in methods}
    else:
        c = methods.get(control)
        versus = None if c is None else {"diff": -c["diff"], "ci": c["ci"], "n": n,
                                         "beats": bool(math.isfinite(c["ci"]) and -c["diff"] - c["ci"] > metric.delta)}
        states = {m: {"state": state_of(e, metric.delta), "half": state_of(e, metric.delta / 2),
                      "double": state_of(e, 2 * metric.delta)} for m, e in methods.items()}
    for m, e in methods.items():
        sd = e["ci"] / stats.t.ppf(0.975, n - 1) * math.sqrt(n) if n > 1 and math.isfinite(e["ci"]) else math.nan
        need = pairs_to_settle(e["diff"], sd, metric.delta) if states[m]["state"] == "undecided" else None
        out[m].update(state=states[m]["state"], diff=e["diff"], ci=e["ci"], p_holm=e["p_holm"],
                      seeds_needed=math.ceil(need / settings) if need else None)
    return {"metric": metric.name, "higher_is_better": metric.higher_is_better, "delta": metric.delta,
            "best": best, "control": control, "versus_control": versus,
            "answers": bool(versus and versus["beats"]), "settings": settings, "seeds": seeds,
            "ranked": len([m for m in methods if m != control]),
            "evidence": f"{settings} setting(s) × {seeds} seed(s)",
            "sensitivity": {k: {m: s[k] for m, s in states.items()} for k in ("half", "double")},
            "methods": out, "source": "table"}


def main(folder: str = "leaderboards") -> None:
    for path in sorted(Path(folder).glob("*/*.ranks.json")):
        entry = json.loads(path.read_text())
        verdicts = entry.get("verdicts") or {}
        if not verdicts or all("state" in next(iter(v["methods"].values()), {}) for v in verdicts.values()):
            continue
        text = path.with_name(path.name.removesuffix(".ranks.json") + ".md").read_text()
        metric = TRACKS[entry["track"]].METRIC
        new = {}
        for question, old in verdicts.items():
            if question == "atypical":
                continue
            rows = _tables(text, HEADINGS.get(entry["track"], question))
            override = entry["seeds"] // 2 if entry["track"] == "meta" else None
            new[question] = reverdict(old, rows, metric, override)
        entry["verdicts"] = new
        write_json(path, entry)
        print(path, {q: (v["best"], v["answers"]) for q, v in new.items()})


if __name__ == "__main__":
    main(*sys.argv[1:])
