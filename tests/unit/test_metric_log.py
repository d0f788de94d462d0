"""The metric lines and the metric definitions that read them (no training here; the
integration tests apply them to a real entry point's log)."""

from __future__ import annotations

from defects.training import metric_log


def _definition(name: str) -> dict[str, str]:
    return next(d for d in metric_log.METRIC_DEFINITIONS if d["Name"] == name)


def test_a_definition_reads_every_epoch_and_the_final_line() -> None:
    lines = [
        metric_log.line("epoch=1", {"val_accuracy": 0.5, "val_loss": 1.25}),
        "Epoch 2/2",
        metric_log.line("epoch=2", {"val_accuracy": 0.75, "val_loss": 0.5}),
        metric_log.line("final", {"val_accuracy": 0.8, "val_loss": 0.5, "val_macro_f1": 0.7}),
    ]
    assert metric_log.values(_definition("validation:accuracy"), lines) == [0.5, 0.75, 0.8]
    assert metric_log.values(_definition("validation:macro_f1"), lines) == [0.7]


def test_keras_own_epoch_line_is_not_read() -> None:
    keras_line = "2/2 - 1s - 300ms/step - accuracy: 0.5 - loss: 1.2 - val_accuracy: 0.4"
    assert metric_log.values(_definition("validation:accuracy"), [keras_line]) == []


def test_a_value_that_is_not_finite_is_left_out_of_the_line() -> None:
    assert metric_log.line("epoch=1", {"val_loss": float("nan"), "val_accuracy": 0.5}) == (
        "metric: epoch=1 val_accuracy=0.500000"
    )
