"""The learning curves say when the training loss is of smoothed labels."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pytest

from defects.jobs import plots


def _legends(history: dict, path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    close = plt.close

    def record(figure: object = None) -> None:
        for axis in getattr(figure, "axes", []):
            legend = axis.get_legend()
            if legend is not None:
                seen.extend(text.get_text() for text in legend.get_texts())
        close(figure)

    monkeypatch.setattr(plt, "close", record)
    plots.plot_curves(history, path)
    assert path.is_file()
    return seen


def test_the_training_loss_of_smoothed_labels_is_labelled_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    history = {"loss": [0.9, 0.5], "val_loss": [0.8, 0.2], "accuracy": [0.5, 0.9]}
    plain = _legends(history, tmp_path / "plain.png", monkeypatch)
    assert "train" in plain and not any("smoothed" in text for text in plain)
    smoothed = _legends({**history, "label_smoothing": 0.1}, tmp_path / "s.png", monkeypatch)
    assert "train (labels smoothed 0.1)" in smoothed
    # Only the loss: accuracy is of the labels as given.
    assert smoothed.count("train") == 1
