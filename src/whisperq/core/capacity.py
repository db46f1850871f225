"""How much CPU a worker has, from one place: the engine's threads on Lambda, on the twin and on any
machine, and the planner's model of Lambda (which gives CPU in proportion to memory)."""

from __future__ import annotations

import os
from collections.abc import Mapping

LAMBDA_VCPU_MB = 1769.0  # Lambda gives one vCPU per 1,769 MB of memory
LAMBDA_MAX_VCPUS = 6.0  # at 10,240 MB
LAMBDA_MEMORY_ENV = "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"  # set by Lambda in every function's environment
# The transcriber function's memory: infra/template.yaml's TranscriberMemoryMb default (a test keeps them
# equal), what the twin's workers run as and what the planner plans for unless told otherwise.
FUNCTION_MEMORY_MB = 3008


def lambda_vcpus(memory_mb: float) -> float:
    """The vCPUs of a Lambda function of this memory (fractions below 1,769 MB)."""
    return min(LAMBDA_MAX_VCPUS, memory_mb / LAMBDA_VCPU_MB)


def threads_for(vcpus: float) -> int:
    """Engine threads for this many vCPUs: one per whole vCPU (3,008 MB's 1.7 vCPUs run 1), at least 1."""
    return max(1, int(vcpus))


def machine_vcpus() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def engine_threads(asked: int, environ: Mapping[str, str]) -> int:
    """The threads a worker's engine runs: `asked` when set (WHISPERQ_CPU_THREADS), else one per whole
    vCPU of its Lambda function (by the memory Lambda, or the twin, puts in its environment), else this
    machine's cores (a benchmark, a script)."""
    if asked:
        return asked
    memory = environ.get(LAMBDA_MEMORY_ENV)
    if memory:
        return threads_for(lambda_vcpus(float(memory)))
    return threads_for(machine_vcpus())
