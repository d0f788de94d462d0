"""``sagemaker``: a SageMaker training job on a GPU instance, with the data in real S3.

The request is the shared ``ModelTrainer`` in ``SAGEMAKER_TRAINING_JOB`` mode, so the cloud
runs the very job that ``local`` runs in the container. Around the SDK this package adds
what launching a paid job needs, one concern a module:

- :mod:`.preflight`: credentials, role, region, real S3, identity, bucket and instance type,
  checked before anything is uploaded, each failure with its fix;
- :mod:`.request`: the ``CreateTrainingJob`` request, laid out in S3 like every job;
- :mod:`.dry_run`: that exact request for ``--dry-run``, built against moto in-process;
- :mod:`.follow`: status changes and the CloudWatch log while the job runs, what Ctrl-C
  means for a job billed on its own (asked through the CLI's ``confirm``), its result;
- :mod:`.backend`: the backend that ties them together (``--detach`` starts and returns).
"""

from defects.backends.cloud.backend import SageMakerBackend

__all__ = ["SageMakerBackend"]
