"""Using a trained model: :mod:`.loading` finds and loads a job's model and evaluates it on
a split, :mod:`.prediction` classifies photos.

Imports: jobs, dataset, storage, console and the training package (the model's own layers
and the decode-and-resize graph); never the backends, the pipeline or the CLI.
"""
