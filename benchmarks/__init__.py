"""Benchmarks: the tool against the usual way of doing each step, measured side by side.

``python -m benchmarks`` (``--quick`` for the CI-sized run) runs them all in one process
tree, prints a table and writes ``benchmarks/results/report-<timestamp>.json`` and
``latest.json``. Each result carries its figures, the ratio, the target and whether the
target is met:

| benchmark | compares | target |
|---|---|---|
| ``input`` | the entry point's tf.data pipeline vs a per-file PIL loop, 1920x1080 JPEGs | >= 3x |
| ``training`` | the entry point's images/s vs ``model.fit`` on decoded arrays; GFLOP/s | >= 0.9x |
| ``staging`` | ``defects stage`` vs a serial boto3 loop; staging again unchanged | >= 5x; <= 5 % |
| ``overhead`` | a whole ``process`` job minus its fit time (``local`` reported) | <= 10 s |
| ``quality`` | ``--model default`` vs ``article``; ``mixed_bfloat16`` vs ``float32`` | see below |

The default model must be more accurate than the article's for at most twice its training
time; the precision comparison has no target: it is the measurement behind the CPU default.
"""
