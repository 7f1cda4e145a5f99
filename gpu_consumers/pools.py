"""Pools: one model deployment each, configured by name (pipeline kind, model, dtype, devices, batch cap).

Pools come from a JSON object ``{"<pool>": {...}, ...}`` in the file ``GPU_POOLS_FILE`` or inline in
``GPU_POOLS``. The pool ``default`` always exists: unless configured otherwise it runs the tiny
random-weight Wan pipeline from the model cache, built on first use, so a fresh checkout renders real
(if meaningless) videos without downloading weights. A production pool names a hub id or a local
directory instead, e.g. ``{"wan": {"pipeline": "text_to_video", "model":
"Wan-AI/Wan2.1-T2V-1.3B-Diffusers", "dtype": "bfloat16", "device_policy": "cuda"}}``.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from gpu_consumers.exceptions import PoolConfigError
from ops.runtime.config import DEFAULT_PIPELINE, PIPELINE_TASK_TYPES
from schemas.records import TaskType

DEFAULT_POOL = "default"
TINY_MODEL_DIR = "tiny-wan"
# Task types (see schemas.records.TaskType) plus the benchmark-only simulated backend: the kinds the
# gateway reads too (ops.runtime.config.PIPELINE_TASK_TYPES), so it accepts only work some pool declares.
PIPELINE_KINDS = tuple(PIPELINE_TASK_TYPES)
DTYPES = ("float32", "bfloat16", "float16")


class DevicePolicy(enum.StrEnum):
    """Where a pool runs without ``--devices``: every visible GPU else the CPU, the CPU, or GPUs only."""

    AUTO = "auto"
    CPU = "cpu"
    CUDA = "cuda"


_POOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_FIELDS = {
    "pipeline",
    "model",
    "dtype",
    "device_policy",
    "max_batch_size",
    "call_kwargs",
    "make_tiny",
    "simulated_seconds",
}


@dataclass(frozen=True, slots=True)
class PoolConfig:
    """One pool: what it runs and how."""

    name: str
    pipeline: str
    model: str = ""
    dtype: str = "float32"
    device_policy: DevicePolicy = DevicePolicy.AUTO
    max_batch_size: int = 8
    # Extra keyword arguments for every pipeline call (e.g. max_sequence_length for a small encoder).
    call_kwargs: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    make_tiny: bool = False
    simulated_seconds: float = 1.0

    @property
    def simulated(self) -> bool:
        return self.pipeline == "simulated"

    @property
    def task_types(self) -> frozenset[TaskType]:
        """What this pool's pipeline kind runs, as the gateway reads it from the same configuration."""
        return PIPELINE_TASK_TYPES[self.pipeline]


def default_pool(model_cache: Path) -> PoolConfig:
    """The built-in ``default`` pool: the tiny Wan pipeline under ``model_cache``, made if missing."""
    return PoolConfig(
        name=DEFAULT_POOL,
        pipeline=DEFAULT_PIPELINE,
        model=str(model_cache / TINY_MODEL_DIR),
        dtype="float32",
        device_policy=DevicePolicy.AUTO,
        max_batch_size=8,
        call_kwargs=MappingProxyType({"max_sequence_length": 64}),
        make_tiny=True,
    )


def load_pools(*, text: str | None, source: str, model_cache: Path) -> dict[str, PoolConfig]:
    """Parse the pools JSON ``text`` (``None``: none configured); ``source`` names it in errors."""
    pools = {DEFAULT_POOL: default_pool(model_cache)}
    if text is None:
        return pools
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PoolConfigError(f"{source} is not valid JSON: {exc}") from None
    if not isinstance(raw, dict):
        raise PoolConfigError(f"{source} must be a JSON object of pool name -> settings")
    for name, values in raw.items():
        pools[name] = parse_pool(name, values, source=source)
    return pools


def parse_pool(name: str, values: Any, *, source: str) -> PoolConfig:
    """One pool's settings, checked; errors name the source, the pool and the field."""
    where = f"{source}: pool {name!r}"
    if not _POOL_NAME.fullmatch(name):
        raise PoolConfigError(f"{where}: names are 1-64 letters, digits, '_' or '-'")
    if not isinstance(values, dict):
        raise PoolConfigError(f"{where} must be an object")
    unknown = sorted(set(values) - _FIELDS)
    if unknown:
        raise PoolConfigError(f"{where} has unknown fields {unknown}; known: {sorted(_FIELDS)}")
    pipeline = values.get("pipeline")
    if pipeline not in PIPELINE_KINDS:
        raise PoolConfigError(f"{where}: pipeline must be one of {list(PIPELINE_KINDS)}, got {pipeline!r}")
    model = values.get("model", "")
    if pipeline != "simulated" and (not isinstance(model, str) or not model):
        raise PoolConfigError(f"{where}: model must name a hub id or a local directory")
    dtype = values.get("dtype", "float32")
    if dtype not in DTYPES:
        raise PoolConfigError(f"{where}: dtype must be one of {list(DTYPES)}, got {dtype!r}")
    policy = values.get("device_policy", DevicePolicy.AUTO.value)
    policies = [str(known) for known in DevicePolicy]
    if policy not in policies:
        raise PoolConfigError(f"{where}: device_policy must be one of {policies}, got {policy!r}")
    size = values.get("max_batch_size", 8)
    if not isinstance(size, int) or isinstance(size, bool) or size < 1:
        raise PoolConfigError(f"{where}: max_batch_size must be a positive integer, got {size!r}")
    call_kwargs = values.get("call_kwargs", {})
    if not isinstance(call_kwargs, dict):
        raise PoolConfigError(f"{where}: call_kwargs must be an object")
    seconds = values.get("simulated_seconds", 1.0)
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool) or seconds < 0:
        raise PoolConfigError(f"{where}: simulated_seconds must be a number >= 0, got {seconds!r}")
    make_tiny = values.get("make_tiny", False)
    if not isinstance(make_tiny, bool):
        raise PoolConfigError(f"{where}: make_tiny must be true or false, got {make_tiny!r}")
    return PoolConfig(
        name=name,
        pipeline=pipeline,
        model=str(Path(model).expanduser()) if model.startswith("~") else model,
        dtype=dtype,
        device_policy=DevicePolicy(policy),
        max_batch_size=size,
        call_kwargs=MappingProxyType(dict(call_kwargs)),
        make_tiny=make_tiny,
        simulated_seconds=float(seconds),
    )


def resolve_devices(pool: PoolConfig, requested: str | None) -> list[str]:
    """The devices to run one consumer each on: ``--devices`` as given, else the pool's policy."""
    if requested:
        devices = [item.strip() for item in requested.split(",") if item.strip()]
        for device in devices:
            if device != "cpu" and not re.fullmatch(r"cuda(:\d+)?", device):
                raise PoolConfigError(f"--devices takes cpu or cuda:N entries, got {device!r}")
        if not devices:
            raise PoolConfigError("--devices must name at least one device")
        return devices
    if pool.simulated or pool.device_policy == DevicePolicy.CPU:
        return ["cpu"]
    import torch  # only pools that run a model pay for importing torch

    count = torch.cuda.device_count()
    if count == 0:
        if pool.device_policy == DevicePolicy.CUDA:
            raise PoolConfigError(
                f"pool {pool.name!r} needs CUDA devices (device_policy=cuda) and none is visible"
            )
        return ["cpu"]
    return [f"cuda:{index}" for index in range(count)]
