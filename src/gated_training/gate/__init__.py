"""The model gate's shape: one context (``context.py``) and a list of check functions over it
(``checks.py``). ``steps/evaluate_model.py`` assembles the context and writes the records."""

from gated_training.gate.checks import CHECKS, Check, Verdict, decide, run_checks
from gated_training.gate.context import Answers, ChampionView, GateContext

__all__ = ["CHECKS", "Answers", "ChampionView", "Check", "GateContext", "Verdict", "decide", "run_checks"]
