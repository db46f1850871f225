"""Threads follow the function, from one place: the engine on Lambda, on the twin, and the planner."""

import pytest

from whisperq.core import capacity
from whisperq.planner.simulate import Pipeline


@pytest.mark.parametrize(("memory_mb", "threads"), [(1024, 1), (1769, 1), (3008, 1), (3538, 2), (10240, 5)])
def test_engine_threads_when_on_lambda_then_one_per_whole_vcpu_of_its_memory(memory_mb, threads):
    environ = {capacity.LAMBDA_MEMORY_ENV: str(memory_mb)}
    assert capacity.engine_threads(0, environ) == threads
    assert capacity.engine_threads(3, environ) == 3  # WHISPERQ_CPU_THREADS wins
    assert Pipeline(memory_mb=memory_mb).threads == threads  # the planner runs what the function runs


def test_engine_threads_when_not_on_lambda_then_the_machine_cores(monkeypatch):
    monkeypatch.setattr(capacity, "machine_vcpus", lambda: 8)
    assert capacity.engine_threads(0, {}) == 8
    assert capacity.engine_threads(2, {}) == 2


def test_engine_threads_when_a_twin_worker_then_what_the_deployed_function_runs(monkeypatch):
    monkeypatch.setattr(capacity, "machine_vcpus", lambda: 16)  # the twin's host does not matter
    environ = {capacity.LAMBDA_MEMORY_ENV: str(capacity.FUNCTION_MEMORY_MB)}
    assert capacity.engine_threads(0, environ) == 1


def test_lambda_vcpus_when_at_the_limits_then_fractions_below_one_and_six_at_most():
    assert capacity.lambda_vcpus(1769) == 1.0
    assert capacity.lambda_vcpus(885) == pytest.approx(0.5, abs=0.01)
    assert capacity.lambda_vcpus(10240) == pytest.approx(5.79, abs=0.01)  # linear; AWS caps at 6


def test_planner_speed_when_threads_or_a_fraction_of_a_vcpu_then_the_measured_speedup_applies():
    one = Pipeline(memory_mb=1769, rtf_per_thread=20.0, thread_speedup=0.7)
    assert one.rtf == 20.0
    two = Pipeline(memory_mb=3538, rtf_per_thread=20.0, thread_speedup=0.7)
    assert two.threads == 2 and two.rtf == pytest.approx(14.0)
    half = Pipeline(memory_mb=885, rtf_per_thread=20.0, thread_speedup=0.7)
    assert half.rtf == pytest.approx(10.0, abs=0.1)
    pinned = Pipeline(memory_mb=3008, cpu_threads=2, rtf_per_thread=20.0, thread_speedup=1.5)
    assert pinned.rtf == pytest.approx(20.0 * 1.5 * 3008 / 1769 / 2)
