"""The text-to-video runner on the tiny Wan pipeline, loaded through ``from_pretrained`` on the CPU."""

from __future__ import annotations

import os
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest

from gpu_consumers.exceptions import UnsupportedTask
from gpu_consumers.pipelines import BatchRequest, TaskInput, load_runner
from gpu_consumers.pipelines.text_to_video import TextToVideoRunner
from gpu_consumers.pools import parse_pool
from tests.gpu_consumers.helpers import params


@pytest.fixture(scope="module")
def runner(tiny_model_dir: Path) -> TextToVideoRunner:
    pool = parse_pool(
        "tiny",
        {
            "pipeline": "text_to_video",
            "model": str(tiny_model_dir),
            "call_kwargs": {"max_sequence_length": 16},
        },
        source="test",
    )
    # STOREE_TEST_DEVICE=cuda:0 runs the same checks on a GPU machine.
    loaded = load_runner(pool, os.environ.get("STOREE_TEST_DEVICE", "cpu"))
    assert isinstance(loaded, TextToVideoRunner)
    assert type(loaded.pipeline).__name__ == "WanPipeline"
    return loaded


def request(*seeds: int, **overrides: object) -> BatchRequest:
    tasks = tuple(TaskInput(f"story:{i}", f"a red fox number {i}", "", seed) for i, seed in enumerate(seeds))
    return BatchRequest(tasks, params(**overrides))


def test_batch_renders_one_mp4_per_task_and_reports_every_step(
    runner: TextToVideoRunner, tmp_path: Path
) -> None:
    steps: list[tuple[int, int]] = []
    outputs = runner.run(request(1, 2, 3, num_inference_steps=3), tmp_path, lambda s, t: steps.append((s, t)))
    assert steps == [(1, 3), (2, 3), (3, 3)]
    assert [o.task_id for o in outputs] == ["story:0", "story:1", "story:2"]
    for output in outputs:
        assert output.media_type == "video/mp4" and output.duration_s == 5 / 8
        assert iio.imread(output.path).shape == (5, 32, 32, 3)


def test_a_seed_gives_the_same_video_alone_or_in_a_batch(runner: TextToVideoRunner) -> None:
    alone = runner(request(7)).videos[0]
    batched = runner(request(5, 7)).videos[1]
    # Batched float math may differ in the last bits; what matters is that neighbours do not leak in.
    np.testing.assert_allclose(alone, batched, atol=1e-4)
    assert not np.allclose(runner(request(8)).videos[0], alone, atol=1e-3)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"width": 40}, "width must be a positive multiple of 16, got 40"),
        ({"num_frames": 6}, "num_frames must be 1 \\+ a multiple of 4, got 6"),
        ({"num_inference_steps": 0}, "num_inference_steps must be at least 1, got 0"),
    ],
)
def test_check_inputs_refuses_what_the_pipeline_would_round(
    runner: TextToVideoRunner, overrides: dict[str, int], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        runner.check_inputs(request(1, **overrides))


def test_batch_above_the_pool_cap_is_refused(runner: TextToVideoRunner) -> None:
    with pytest.raises(ValueError, match="more than max_batch_size=8"):
        runner.check_inputs(request(*range(9)))


def test_task_types_without_a_pipeline_say_so() -> None:
    pool = parse_pool("i2v", {"pipeline": "image_to_video", "model": "x"}, source="test")
    with pytest.raises(UnsupportedTask, match="image_to_video is not supported by this pool yet"):
        load_runner(pool, "cpu")
