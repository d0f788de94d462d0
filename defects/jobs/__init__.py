"""Jobs on disk: every job is a folder under ``runs/`` with ``job.json`` as its record.

- :mod:`.records`: job names, the record, true statuses, listing and finding jobs, the
  files a job holds (history, metrics) read with a clear error when damaged;
- :mod:`.logs`: the job log as a person reads it;
- :mod:`.reports`: ``describe`` and ``compare``;
- :mod:`.cleanup`: what ``rm`` and ``gc`` may remove;
- :mod:`.plots`: ``curves.png``, ``confusion.png`` and ``compare.png``.

Imports: the storage, dataset and training-contract layers, :mod:`defects.errors` and
:mod:`defects.console`; never the backends, the pipeline, tuning or the CLI.
"""
