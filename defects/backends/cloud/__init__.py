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
- :mod:`.aws`: the account (one session, the identity, the bucket, image and instance type)
  every module shares, and AWS's errors as the tool's;
- :mod:`.backend`: the backend that ties them together (``--detach`` starts and returns).

What other packages may use (the tuner in the cloud builds on the training job's request)
is exported here; the modules are this package's own.
"""

from defects.backends.cloud.aws import error_text
from defects.backends.cloud.backend import SageMakerBackend
from defects.backends.cloud.dry_run import capture
from defects.backends.cloud.request import channels, quiet_sdk, refused, sdk_context

__all__ = [
    "SageMakerBackend",
    "capture",
    "channels",
    "error_text",
    "quiet_sdk",
    "refused",
    "sdk_context",
]
