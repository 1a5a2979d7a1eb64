"""The model gate's shape: one context (``context.py``) and a list of check functions over it
(``checks.py``), and what they read: scores (``metrics``), leakage scores and importances.
``steps/evaluate_model.py`` assembles the context and writes the records."""

# The package's face: other packages import these names from here, never from its modules (tests/unit/test_layering.py).

from gated_training.gate.checks import CHECKS, Check, Verdict, decide, run_checks
from gated_training.gate.context import Answers, ChampionView, GateContext
from gated_training.gate.importance import permutation_importances
from gated_training.gate.leakage import (
    SAMPLE_ROWS,
    input_columns_by_importance,
    pair_feature_scores,
    single_feature_scores,
)
from gated_training.gate.metrics import (
    Scores,
    aligned_proba,
    label_codes,
    label_order,
    predict_labels_and_proba,
    prior_predictions,
    score_model,
    score_predictions,
)

__all__ = [
    "Answers",
    "CHECKS",
    "ChampionView",
    "Check",
    "GateContext",
    "SAMPLE_ROWS",
    "Scores",
    "Verdict",
    "aligned_proba",
    "decide",
    "input_columns_by_importance",
    "label_codes",
    "label_order",
    "pair_feature_scores",
    "permutation_importances",
    "predict_labels_and_proba",
    "prior_predictions",
    "run_checks",
    "score_model",
    "score_predictions",
    "single_feature_scores",
]
