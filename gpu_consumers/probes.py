"""Probe tasks: the end-to-end probe's tasks end at once, without a render (pure event builders).

A probe story (:func:`schemas.ids.is_probe_story`, ``ops/lag/probe.py``) takes the real path through
the splitter and batcher, and so may share a batch with users' tasks of the same signature. Triage
takes its tasks out of the batch before the pipeline runs and emits their TaskStarted and TaskCompleted
(one placeholder output, ``probe://<task id>``, since the contract wants one; ``run_ms`` and
``gpu_seconds`` 0), so the probe costs no GPU time and the users' tasks of the batch run as before.
The probe measures this member's dispatch: the time from BatchReady to its TaskStarted.
"""

from __future__ import annotations

from gpu_consumers import results
from schemas.events import BatchReady, TaskCompleted, TaskStarted
from schemas.ids import is_probe_story
from schemas.records import BatchTask, OutputArtifact

PROBE_MEDIA_TYPE = "application/x-storee-probe"


def is_probe(task: BatchTask) -> bool:
    return is_probe_story(task.story_id)


def probe_events(batch: BatchReady, task: BatchTask, consumer_id: str) -> tuple[TaskStarted, TaskCompleted]:
    """The TaskStarted and TaskCompleted that end a probe task, with the sequences a render's would have."""
    started = results.started(batch, task, consumer_id, task.attempt)
    completed = results.completed(
        batch,
        task,
        consumer_id,
        attempt=task.attempt,
        output=OutputArtifact(uri=f"probe://{task.task_id}", media_type=PROBE_MEDIA_TYPE, size_bytes=0),
        seed=results.seed_for(task, batch),
        run_ms=0,
        gpu_seconds=0.0,
    )
    return started, completed
