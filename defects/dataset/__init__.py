"""The data on the host: synthetic photos (:mod:`.synth`), a user's folder validated and split
(:mod:`.prepare`), splits packed as tar shards (:mod:`.shards`), and the steps as a user
runs them, with progress (:mod:`.steps`)."""
