"""The MLflow champion: an MLflow "models from code" pyfunc that answers like the registry champion.

MLflow copies this file into the logged model and runs it when the model loads (our code, shipped
with the model; the fitted pipeline itself is a skops file loaded with the trusted types recorded
at training, never a pickle). ``predict`` returns, per row, the ``label`` and one
``probability.<class>`` column per class, so ``mlflow models serve`` gives probabilities too.

It imports nothing from gated_training, so any MLflow client loads it; the signature
(``steps.train_model.signature_from_metadata``) is typed from the feature metadata.
"""

from __future__ import annotations

import mlflow.pyfunc

PROBABILITY_PREFIX = "probability."


class GatedTrainingClassifier(mlflow.pyfunc.PythonModel):
    """Labels and class probabilities from the fitted scikit-learn pipeline."""

    # No type hints on these two: MLflow would try to validate inputs against them (the signature,
    # typed from the feature metadata, is what validates).
    def load_context(self, context):  # type: ignore[no-untyped-def]
        import json
        from pathlib import Path

        import skops.io

        trusted = json.loads(Path(context.artifacts["trusted_types"]).read_text())
        self.model = skops.io.load(context.artifacts["model"], trusted=trusted)

    def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]
        import numpy as np
        import pandas as pd

        # MLflow decodes a JSON null in a text column to None, which the fitted imputers
        # (missing_values=NaN) would not impute: the row would be encoded as an unseen category and
        # answered differently from the registry champion. A missing value is NaN, as in training.
        if isinstance(model_input, pd.DataFrame):
            model_input = model_input.copy()
            for column in model_input.columns:
                if model_input[column].dtype == object:
                    model_input[column] = model_input[column].where(model_input[column].notna(), np.nan)
        labels = self.model.predict(model_input)
        probabilities = self.model.predict_proba(model_input)
        output = pd.DataFrame(probabilities, columns=[f"{PROBABILITY_PREFIX}{c}" for c in self.model.classes_])
        output.insert(0, "label", [label.item() if hasattr(label, "item") else label for label in labels])
        return output


mlflow.models.set_model(GatedTrainingClassifier())
