"""The data on the host: synthetic photos (:mod:`.synth`), a user's folder validated and split
(:mod:`.prepare`), splits packed as tar shards (:mod:`.shards`), and the steps as a user
runs them, with progress (:mod:`.steps`)."""

from pathlib import Path

# The public dataset's classes; here, not in .prepare, so that the CLI shows them without
# importing the image libraries.
DEFAULT_CLASSES = ("good", "oil", "scratch", "stain")
# Where synthetic and prepared data go, under the working folder.
DATA_DIR = Path("data")
