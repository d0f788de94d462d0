"""Using a trained model: :mod:`.loading` finds and loads a job's model, :mod:`.prediction`
classifies photos, :mod:`.evaluation` scores the model on a split or a folder of class
folders (through prediction).

Imports: jobs, dataset, storage, console and the training package (the model's own layers
and the decode-and-resize graph); never the backends, the pipeline or the CLI.
"""
