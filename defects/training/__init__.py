"""The training entry point, as every backend ships it into its container: the contract
(:mod:`.contract`), the input pipeline (:mod:`.data`), the networks (:mod:`.model`,
:mod:`.efficientnet_lite`), how long to train (:mod:`.budget`), the fit (:mod:`.fitting`),
checkpoints (:mod:`.checkpoints`), what it leaves (:mod:`.outputs`) and the program
(:mod:`.train`).

Imports: only itself, TensorFlow, Keras, NumPy and the standard library.
"""
