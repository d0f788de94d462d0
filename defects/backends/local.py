"""``local``: not available yet."""

from __future__ import annotations

from defects.backends.base import Backend, TrainingJob, TrainingResult
from defects.errors import NotAvailable


class LocalBackend(Backend):
    name = "local"
    embedded_storage = True

    def __init__(self, settings: object) -> None:
        raise NotAvailable(
            "The local backend is not implemented yet.",
            hint="Use DEFECTS_BACKEND=process (the default) for now.",
        )

    def train(self, job: TrainingJob) -> TrainingResult:
        raise NotAvailable("The local backend is not implemented yet.")
