"""Classification metrics with scikit-learn, shared by the entry point and ``defects evaluate``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support


def classification_metrics(
    labels: np.ndarray, predictions: np.ndarray, class_names: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and the confusion matrix."""
    indices = list(range(len(class_names)))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predictions, labels=indices, zero_division=0
    )
    matrix = confusion_matrix(labels, predictions, labels=indices)
    return {
        "accuracy": float(accuracy_score(labels, predictions)) if len(labels) else 0.0,
        # Over the classes the images have: a class none of them is (new photos scored on
        # a few classes) has no F1 to count.
        "macro_f1": float(np.mean(f1[support > 0])) if support.any() else 0.0,
        "count": int(len(labels)),
        "class_names": list(class_names),
        "per_class": {
            name: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        # Rows are the true classes, columns the predicted ones.
        "confusion_matrix": matrix.tolist(),
    }
