"""One job above the backends: the steps from a folder of photos to a fetched model.

- :mod:`.launch`: ``run``, ``train`` and ``dry_run``: prepare and stage the data, hand the
  job to the chosen backend, record it;
- :mod:`.lifecycle`: a job's record through its life, and what a signal means for it;
- :mod:`.resume`: ``train --resume`` and collecting what a finished job left behind;
- :mod:`.pricing`: the price of a cloud job before it starts.

Imports: backends, jobs, dataset, storage, console and the training contract; never tuning,
inference or the CLI.
"""
