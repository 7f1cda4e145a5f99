"""Reading stories and tasks from the job view: status, timings, queue position, pages, results."""

from __future__ import annotations

import io
import zipfile

import pytest

from tests.gateway.factories import clip, story_doc, task_doc

pytestmark = pytest.mark.integration


def test_story_shows_tasks_timings_queue_position_and_outputs(gateway, mongo_db):
    account = gateway.account()
    me = account.account_id
    out = clip(gateway.settings.output_dir, "s1", 0, b"clip-0")
    mongo_db.stories.insert_one(
        story_doc(
            "s1",
            me,
            status="running",
            task_count=3,
            progress=0.33,
            started_at=1_500,
            outputs=[{"task_id": "s1:0", "scene_index": 0, "uri": out["uri"], "media_type": "video/mp4"}],
        )
    )
    mongo_db.tasks.insert_many(
        [
            task_doc("s1", me, 0, status="completed", started_at=1_500, finished_at=1_900, outputs=[out]),
            task_doc("s1", me, 1, status="running", step=5, total_steps=20, started_at=1_600),
            task_doc("s1", me, 2, status="queued", queued_at=2_000),
            # Ahead of s1:2 in the same pool and tier: counted. Other tier, pool, later or running: not.
            task_doc("x", "someone", 0, status="queued", queued_at=1_100),
            task_doc("x", "someone", 1, status="batched", queued_at=1_200),
            task_doc("y", "someone", 0, status="queued", queued_at=1_300, tier="free"),
            task_doc("y", "someone", 1, status="queued", queued_at=1_400, pool="big"),
            task_doc("y", "someone", 2, status="running", queued_at=1_500),
            task_doc("z", "someone", 0, status="queued", queued_at=3_000),
        ]
    )
    response = gateway.client.get("/v1/stories/s1", headers=gateway.headers(account))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "running" and body["progress"] == 0.33
    assert body["timings"] == {"submitted_at": 1_000, "started_at": 1_500, "finished_at": None}
    assert body["queue_position"] == 2
    assert [t["status"] for t in body["tasks"]] == ["completed", "running", "queued"]
    assert body["tasks"][1]["progress"] == 0.25
    assert body["tasks"][0]["timings"]["finished_at"] == 1_900
    assert body["outputs"] == [
        {"task_id": "s1:0", "scene_index": 0, "media_type": "video/mp4", "url": "/v1/tasks/s1:0/result"}
    ]

    task = gateway.client.get("/v1/tasks/s1:2", headers=gateway.headers(account)).json()
    assert task["status"] == "queued" and task["queue_position"] == 2 and task["pool"] == "default"
    done = gateway.client.get("/v1/tasks/s1:0", headers=gateway.headers(account)).json()
    assert done["queue_position"] is None
    assert done["outputs"][0]["url"] == "/v1/tasks/s1:0/result?index=0"


def test_failed_task_shows_its_error(gateway, mongo_db):
    account = gateway.account()
    error = {"error_class": "OutOfMemoryError", "message": "CUDA out of memory", "retriable": False}
    mongo_db.tasks.insert_one(task_doc("s2", account.account_id, 0, status="failed", error=error))
    body = gateway.client.get("/v1/tasks/s2:0", headers=gateway.headers(account)).json()
    assert body["status"] == "failed" and body["error"] == error


def test_list_is_newest_first_paginated_and_filtered(gateway, mongo_db):
    account = gateway.account()
    me = account.account_id
    mongo_db.stories.insert_many(
        [
            story_doc(f"s{i}", me, submitted_at=1_000 + i, status="completed" if i % 2 else "queued")
            for i in range(5)
        ]
        + [story_doc("s5", me, submitted_at=1_004)]  # same time as s4: the id breaks the tie
        + [story_doc("other", "someone-else", submitted_at=9_999)]
    )
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = gateway.client.get("/v1/stories", headers=gateway.headers(account), params=params).json()
        seen += [story["story_id"] for story in page["stories"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == ["s5", "s4", "s3", "s2", "s1", "s0"]
    done = gateway.client.get("/v1/stories", headers=gateway.headers(account), params={"status": "completed"})
    assert [s["story_id"] for s in done.json()["stories"]] == ["s3", "s1"]
    bad = gateway.client.get("/v1/stories", headers=gateway.headers(account), params={"cursor": "%%%"})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "cursor"


def test_task_result_is_the_file_and_story_result_a_zip_of_every_clip(gateway, mongo_db):
    account = gateway.account()
    me = account.account_id
    big = bytes(range(256)) * 4096  # 1 MiB: several chunks of the streamed archive
    outputs = [clip(gateway.settings.output_dir, "s3", i, data) for i, data in enumerate([big, b"second"])]
    mongo_db.tasks.insert_many(
        [task_doc("s3", me, i, status="completed", outputs=[o]) for i, o in enumerate(outputs)]
    )
    mongo_db.stories.insert_one(
        story_doc(
            "s3",
            me,
            status="completed",
            outputs=[
                {"task_id": f"s3:{i}", "scene_index": i, "uri": o["uri"], "media_type": "video/mp4"}
                for i, o in enumerate(outputs)
            ],
        )
    )
    one = gateway.client.get("/v1/tasks/s3:1/result", headers=gateway.headers(account))
    assert one.status_code == 200 and one.content == b"second"
    assert one.headers["content-type"] == "video/mp4"
    archive = gateway.client.get("/v1/stories/s3/result", headers=gateway.headers(account))
    assert archive.status_code == 200 and archive.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(archive.content)) as unpacked:
        assert unpacked.namelist() == ["scene_000.mp4", "scene_001.mp4"]
        assert unpacked.read("scene_000.mp4") == big
        assert unpacked.read("scene_001.mp4") == b"second"


def test_results_not_ready_yet(gateway, mongo_db):
    account = gateway.account()
    mongo_db.stories.insert_one(story_doc("s4", account.account_id))
    mongo_db.tasks.insert_one(task_doc("s4", account.account_id, 0))
    for path in ("/v1/stories/s4/result", "/v1/tasks/s4:0/result"):
        response = gateway.client.get(path, headers=gateway.headers(account))
        assert response.status_code == 409 and response.json()["error"]["code"] == "not_ready"


def test_unknown_story_is_404(gateway):
    account = gateway.account()
    response = gateway.client.get("/v1/stories/nope", headers=gateway.headers(account))
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
