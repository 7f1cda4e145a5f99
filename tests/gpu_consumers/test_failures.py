from __future__ import annotations

import random

import pytest

from gpu_consumers.exceptions import UnsupportedTask
from gpu_consumers.failures import RetryPolicy, is_out_of_memory, is_permanent


def test_backoff_doubles_with_jitter_and_is_capped() -> None:
    policy = RetryPolicy(max_retries=10, base_s=1.0, max_s=8.0)
    rng = random.Random(7)
    for retry, cap in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        delays = [policy.delay(retry, rng) for _ in range(200)]
        assert all(cap / 2 <= d <= cap for d in delays)
        assert max(delays) - min(delays) > cap / 4  # jittered, not fixed


def test_retry_numbers_start_at_one() -> None:
    with pytest.raises(ValueError, match="retry must be >= 1"):
        RetryPolicy().delay(0, random.Random())


def test_out_of_memory_is_recognised() -> None:
    import torch

    assert is_out_of_memory(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_out_of_memory(RuntimeError("CUDA error: out of memory"))
    assert is_out_of_memory(MemoryError())
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_invalid_input_is_permanent() -> None:
    assert is_permanent(ValueError("width must be a multiple of 16"))
    assert is_permanent(UnsupportedTask("no"))
    assert not is_permanent(RuntimeError("NCCL timeout"))
