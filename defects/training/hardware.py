"""The devices a job trains on: its precision, its distribution strategy and its GPUs.

Standard library, TensorFlow and Keras only: this runs inside the training container.
"""

from __future__ import annotations

import os
from typing import Any

from defects.training import contract

# For tests on a machine without GPUs: split the CPU into this many devices and train on
# them as on as many GPUs (MirroredStrategy).
CPU_REPLICAS_ENV = "DEFECTS_CPU_REPLICAS"


def _count(variable: str) -> int:
    try:
        return int(os.environ.get(variable, "0"))
    except ValueError:
        return 0


def set_up(precision: str) -> tuple[str, Any, int]:
    """The precision (``auto``: mixed float16 on a GPU), the distribution strategy (one
    replica per GPU, all of one instance: MirroredStrategy) and the number of GPUs."""
    import keras
    import tensorflow as tf

    num_gpus = _count(contract.NUM_GPUS_ENV)
    cpu_replicas = _count(CPU_REPLICAS_ENV)
    if precision == "auto":
        precision = "mixed_float16" if num_gpus > 0 else "float32"
    keras.mixed_precision.set_global_policy(precision)
    if num_gpus > 1:
        return precision, tf.distribute.MirroredStrategy(), num_gpus
    if cpu_replicas > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * cpu_replicas
        )
        devices = [f"/cpu:{index}" for index in range(cpu_replicas)]
        return precision, tf.distribute.MirroredStrategy(devices), num_gpus
    return precision, tf.distribute.get_strategy(), num_gpus
