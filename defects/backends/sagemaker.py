"""``sagemaker``: not available yet."""

from __future__ import annotations

from defects.backends.base import Backend, TrainingJob, TrainingResult
from defects.errors import NotAvailable


class SageMakerBackend(Backend):
    name = "sagemaker"
    embedded_storage = False

    def __init__(self, settings: object) -> None:
        raise NotAvailable(
            "The sagemaker backend is not implemented yet.",
            hint="Use DEFECTS_BACKEND=process (the default) for now.",
        )

    def train(self, job: TrainingJob) -> TrainingResult:
        raise NotAvailable("The sagemaker backend is not implemented yet.")
