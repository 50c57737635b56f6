"""Track R: hardness-based resampling at class level (docs/protocol.md, "Track R").

On the train split, a method's class hardness h_c (mean natural-unit score of the
class, averaged over estimation seeds) gives target class sizes S_c
(``bench.resample.class_targets``, total kept); undersampled classes keep their
hardest (or random) samples, oversampled ones are filled by ``duplicate``,
``smote`` or ``holdout``. Fresh protocol models train on the resampled set and are
evaluated per class on the dataset's test split. α = 0 is no resampling: the plain
(or pruned) train split, one set of models shared by every method (protocol cache);
each method's α = 0 record still uses its own hard classes for ``hard_easy``.

A configuration (the record's ``config``) is ``alpha``, ``filler``, ``keep`` and,
where not the default, ``assignment`` and ``prune`` (absent = ``hardness`` and 0):

- ``assignment``: which class gets which size. ``hardness`` is S_c itself; the
  controls ``permuted`` (a seeded random permutation of the sizes) and ``inverse``
  (sizes in reverse hardness order: easy classes grow) keep the total and the
  multiset of sizes, separating the effect of class sizes from that of which
  classes grow (``bench.resample.assign_sizes``).
- ``prune`` (case study 1): the fraction of the train split removed at random,
  class-balanced, before resampling (``bench.resample.prune_balanced``); class
  hardness is then the method's full-pool scores restricted to the kept rows, and
  ``holdout`` fills classes from their pruned real samples, each at most once
  (duplicates only where a class's pruned samples run out; the record's
  ``duplicated`` counts them). α = 0 at a pruning fraction is the pruned subset.

Settings (``--option resampling.KEY=VALUE``): ``alphas``, ``fillers``, ``keep``,
``protocol_seeds``, ``split_seed``, ``epochs``, ``prune`` (fractions; none = no case
study), ``controls`` (assignments run beside ``hardness``; ``none`` for none),
``control_alphas`` / ``control_fillers`` / ``control_methods`` (where controls run;
none = every α > 0 / filler / method). By default the controls run for aum and loss
at α = 1 with the duplicate filler; the ``full`` profile runs every control.

Metrics per class on the test split, recall and precision (a class never predicted
has precision 0): mean, gap (max − min), std (over classes, ddof 0), MAD (mean
absolute deviation from the mean over classes), ``quant_diff`` (mean of the k
best minus the k worst classes; k = 2 for ≤ 10 classes, C // 10 beyond) and
``hard_easy`` (mean over the method's easy classes minus over its hard ones; hard:
S_c at α = 1 above the mean), plus the worst class recall.

Every protocol seed draws its own pruning split and resampled set
(``draw_seed(split_seed, seed)``) as well as its models, so the paired tests over
protocol seeds cover the draw; within a seed, every configuration shares the split. Paired t-tests (scipy ``ttest_rel``) over protocol
seeds compare every α > 0 configuration with α = 0 at the same pruning, and
hardness-based sizes with ``permuted`` ones.
"""
from __future__ import annotations

from .findings import METRIC, degenerate_sizes, findings, report, verdict_rows
from .settings import NAME, Settings, configs, options, plan, setting
from .study import METRICS, class_metrics, run, training_set
from .tests import DEGENERATE_SHARE, compare, relative_change

__all__ = ["NAME", "Settings", "plan", "run", "report", "METRIC", "verdict_rows", "METRICS", "DEGENERATE_SHARE", "class_metrics", "compare",
           "configs", "degenerate_sizes", "findings", "options", "relative_change", "setting", "training_set"]
