"""The data on the host: synthetic photos (:mod:`.synth`, drawn by :mod:`.scene`), a user's
folder checked (:mod:`.images`), split (:mod:`.split`) and laid out with its manifest
(:mod:`.prepare`, :mod:`.manifest`), splits packed as tar shards (:mod:`.shards`), shared
folders built under a lock (:mod:`.folders`), pretrained weights converted from their
package (:mod:`.pretrained`, :mod:`.torchfile`), and the steps as a user runs them, with
progress (:mod:`.steps`).

Imports: storage, console, errors and the training package's network definitions; never
jobs, backends, the pipeline or the CLI."""

from pathlib import Path

# The public dataset's classes; here, not in .prepare, so that the CLI shows them without
# importing the image libraries.
DEFAULT_CLASSES = ("good", "oil", "scratch", "stain")
# Where synthetic and prepared data go, under the working folder.
DATA_DIR = Path("data")
