from __future__ import annotations

import time
from pathlib import Path

from gpu_consumers.pipelines import BatchRequest, TaskInput
from gpu_consumers.pipelines.simulated import SIMULATED_MEDIA_TYPE, SimulatedRunner
from tests.gpu_consumers.helpers import params


def test_simulated_backend_takes_its_time_and_says_what_it_is(tmp_path: Path) -> None:
    steps: list[int] = []
    tasks = (TaskInput("s:0", "p", "", 1), TaskInput("s:1", "p", "", 2))
    started = time.monotonic()
    outputs = SimulatedRunner(0.2).run(
        BatchRequest(tasks, params(num_inference_steps=4)), tmp_path, lambda s, t: steps.append(s)
    )
    assert 0.2 <= time.monotonic() - started < 1.0
    assert steps == [1, 2, 3, 4]
    assert [o.media_type for o in outputs] == [SIMULATED_MEDIA_TYPE] * 2
    assert "simulated output of task s:1" in outputs[1].path.read_text()
