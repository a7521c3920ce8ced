"""Robust evaluation of a trained model: the attack suite with AutoAttack (:mod:`.suite`, ``evaluate``), the
gradient-masking checks (:mod:`.sanity`), accuracy-vs-eps and PGD-loss curves (:mod:`.curves`), the shared cache of
test batches (:mod:`.batch_cache`), the RobustBench protocol (:mod:`.robustbench`), and :mod:`.results`, the one
reader and writer of an evaluation's per-example masks. Imports training and the layers below it, never above."""
