"""TensorFlow's start-up chatter, kept out of what a user reads.

On a CPU machine TensorFlow's C++ side prints, on every start, the absl notice, the oneDNN
notice, "Could not find cuda drivers", a ``cuInit`` error and the CPU-instructions notice;
``TF_CPP_MIN_LOG_LEVEL`` does not silence all of them (some are printed before it is read).
Lines of a training job are filtered where the host renders them (the job log keeps them);
in this process, where evaluate and predict import TensorFlow (from the CLI or the Python
API alike), :func:`import_tensorflow` starts it with file descriptor 2 redirected and writes
back what is not noise afterwards.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from defects.console import log

_NOISE = re.compile(
    r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    # glog-style lines from the sources that announce the hardware TensorFlow did not find.
    r"|[IWE]\d{4} [\d:.]+\s+\d+ (?:port|cudart_stub|cuda_platform|cuda_executor|"
    r"cuda_diagnostics|cpu_feature_guard|cuda_dnn|cuda_fft|cuda_blas|computation_placer|"
    r"gpu_device|cpu_allocator_impl)\.cc:\d+\] .*"
    # A dataset graph passed between TensorFlow versions' op registries (Keras' predict on a
    # tf.data pipeline, TensorFlow 2.21): harmless, and said at every prediction.
    r"|[IWE]\d{4} [\d:.]+\s+\d+ node_def_util\.cc:\d+\] NodeDef mentions attribute "
    r"use_unbounded_threadpool which is not in the op definition: .*"
    # oneDNN's notice when a uint8 image op (the decode-and-resize graph) falls back to Eigen.
    r"|[IWE]\d{4} [\d:.]+\s+\d+ util\.cc:\d+\] oneDNN supports DT_UINT8 only on "
    r"platforms with AVX-512\. .*"
    r"|To enable the following instructions: .*rebuild TensorFlow with the appropriate "
    r"compiler flags\."
)


def is_noise(line: str) -> bool:
    """Whether ``line`` is TensorFlow start-up chatter rather than something to read."""
    return _NOISE.fullmatch(line.strip()) is not None


@contextmanager
def quiet_tensorflow_start() -> Iterator[None]:
    """Send what the C++ side writes to stderr while this block runs to a temporary file;
    afterwards write back every line that is not start-up noise (the noise goes to the debug
    log)."""
    sys.stderr.flush()
    try:
        saved = os.dup(2)
    except OSError:  # No file descriptor 2 to redirect.
        yield
        return
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            for line in capture.read().decode(errors="replace").splitlines():
                if is_noise(line):
                    log.debug("tensorflow: %s", line)
                else:
                    print(line, file=sys.stderr)


def import_tensorflow() -> None:
    """Start TensorFlow and Keras in this process without their start-up chatter: what the
    CLI does for its commands, done here so that the Python API (a notebook) gets it too.
    Everything that imports TensorFlow in this process calls this first."""
    if "tensorflow" not in sys.modules:
        # Read by TensorFlow's C++ side when it starts; a user's own value stands.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with quiet_tensorflow_start():
        import keras  # noqa: F401 - its start-up notices are silenced here
        import tensorflow as tf

        # The first device query is when TensorFlow looks for a GPU (and says so).
        tf.config.list_logical_devices()
