"""Deterministic synthetic tables: mixed types, a learnable target, and controlled drifts.

``generate(rows, seed)`` gives numeric, categorical (with rare levels), boolean and missing
values, and a binary target whose learnability ``signal`` controls. ``drift=`` moves one thing
at a time, so tests can assert exactly which features a drift check must flag:

- ``mean_shift``: ``income`` shifts by one standard deviation;
- ``variance_change``: ``tenure_months`` spreads to twice its standard deviation;
- ``new_categories``: ``channel`` gains levels never seen before;
- ``category_mix``: ``region`` changes its mix of known levels;
- ``label_shift``: the target's class balance moves (features unchanged).

``generate_wide`` widens ``generate`` for the benchmarks; ``mixed_frame`` is the tests' small
table (two numeric, one categorical with missing values, one boolean; target ``label``).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DRIFTS = ("mean_shift", "variance_change", "new_categories", "category_mix", "label_shift")
DRIFTED_FEATURES = {
    "mean_shift": {"income"},
    "variance_change": {"tenure_months"},
    "new_categories": {"channel"},
    "category_mix": {"region"},
    "label_shift": set(),
}
TARGET = "churned"
REGIONS = ["north", "south", "east", "west", "central"]
REGION_MIX = [0.3, 0.25, 0.2, 0.15, 0.1]
CHANNELS = ["web", "store", "phone", "partner", "kiosk"]  # "kiosk" is rare
CHANNEL_MIX = [0.45, 0.3, 0.15, 0.08, 0.02]


def generate(
    rows: int, seed: int = 0, drift: str | None = None, signal: float = 1.5, extra_numeric: int = 0
) -> pd.DataFrame:
    """A table of ``rows`` rows; ``extra_numeric`` adds noise columns to reach a wider schema."""
    if drift is not None and drift not in DRIFTS:
        raise ValueError(f"unknown drift {drift!r}; choose from {', '.join(DRIFTS)}")
    rng = np.random.default_rng(seed)
    income = rng.lognormal(mean=10.5, sigma=0.4, size=rows)
    if drift == "mean_shift":
        income = income + income.std()
    tenure = rng.normal(36, 12, size=rows)
    if drift == "variance_change":
        tenure = 36 + (tenure - 36) * 2
    region_mix = REGION_MIX[::-1] if drift == "category_mix" else REGION_MIX
    region = rng.choice(REGIONS, size=rows, p=region_mix)
    channel = rng.choice(CHANNELS, size=rows, p=CHANNEL_MIX).astype(object)
    if drift == "new_categories":
        unseen = rng.random(rows) < 0.2
        channel[unseen] = rng.choice(["app", "reseller"], size=int(unseen.sum()))
    is_premium = rng.random(rows) < 0.3
    support_calls = rng.poisson(2.0, size=rows).astype(float)

    score = (
        signal * (tenure < 24)
        - 0.8 * is_premium
        + 0.3 * (support_calls - 2)
        - 0.5 * (np.log(income) - 10.5)
        + 0.4 * (region == "south")
        + rng.normal(0, 1, size=rows)
    )
    cutoff = np.quantile(score, 0.5 if drift == "label_shift" else 0.7)
    churned = (score > cutoff).astype(int)

    frame = pd.DataFrame(
        {
            "income": income.round(2),
            "tenure_months": tenure.round(1),
            "support_calls": support_calls,
            "region": region.astype(object),
            "channel": channel,
            "is_premium": is_premium,
            TARGET: churned,
        }
    )
    for index in range(extra_numeric):
        frame[f"noise_{index}"] = rng.normal(size=rows).round(4)
    # Missing values the preprocessor must impute: a few in a numeric and a categorical column.
    frame.loc[rng.random(rows) < 0.03, "support_calls"] = np.nan
    frame.loc[rng.random(rows) < 0.02, "region"] = None
    return frame


def generate_wide(rows: int, columns: int = 30, seed: int = 0, signal: float = 1.5) -> pd.DataFrame:
    """``generate`` widened to exactly ``columns`` columns (target included) with a realistic mix:
    per block of four extras, two numeric (one with 5% missing), one categorical with a rare
    level, one boolean. The extras carry no signal, so accuracy depends on ``signal`` alone."""
    base = generate(rows, seed=seed, signal=signal)
    extra = columns - base.shape[1]
    if extra < 0:
        raise ValueError(f"columns={columns}: at least {base.shape[1]} (the base table's columns)")
    rng = np.random.default_rng(seed + 1)
    added: dict[str, np.ndarray] = {}
    for index in range(extra):
        kind = index % 4
        if kind in (0, 1):
            values = rng.normal(size=rows).round(4)
            if kind == 1:
                values[rng.random(rows) < 0.05] = np.nan
            added[f"num_{index}"] = values
        elif kind == 2:
            added[f"cat_{index}"] = rng.choice(
                ["a", "b", "c", "d", "rare"], size=rows, p=[0.4, 0.3, 0.2, 0.095, 0.005]
            ).astype(object)
        else:
            added[f"flag_{index}"] = rng.random(rows) < 0.5
    return pd.concat([base, pd.DataFrame(added)], axis=1)


def mixed_frame(rows: int = 400, seed: int = 0, classes: tuple = (0, 1), noise: float = 0.3) -> pd.DataFrame:
    """A learnable mixed-type table: numeric, categorical with missing values, boolean; target ``label``."""
    rng = np.random.default_rng(seed)
    x1 = rng.normal(size=rows)
    x2 = rng.uniform(0, 10, size=rows)
    colour = rng.choice(["red", "green", "blue"], size=rows)
    flag = rng.random(rows) > 0.5
    score = x1 + (x2 - 5) / 3 + np.where(colour == "red", 1.0, 0.0) + rng.normal(scale=noise, size=rows)
    bins = np.quantile(score, np.linspace(0, 1, len(classes) + 1)[1:-1])
    label = np.asarray(classes, dtype=object)[np.digitize(score, bins)]
    frame = pd.DataFrame({"x1": x1, "x2": x2, "colour": colour, "flag": flag, "label": label})
    frame.loc[rng.random(rows) < 0.05, "colour"] = None
    frame.loc[rng.random(rows) < 0.05, "x2"] = np.nan
    if all(isinstance(c, (int, np.integer)) for c in classes):
        frame["label"] = frame["label"].astype(int)
    return frame
