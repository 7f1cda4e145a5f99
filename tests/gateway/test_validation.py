"""Every validation rule: a 4xx naming the field, and nothing silently corrected."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest

from gateway.exceptions import InvalidRequest, MalformedRequest
from gateway.settings import GatewaySettings
from gateway.validation import parse_job, parse_json, parse_story
from gateway.webhooks import check_webhook_url
from ops.runtime.config import Secret
from schemas.records import TaskType

SETTINGS = GatewaySettings(
    kafka_bootstrap_servers="unused:9092",
    mongodb_url=Secret("mongodb://unused"),
    mongodb_database="unused",
    topic_prefix="t.",
    pool_capabilities={
        "default": frozenset({TaskType.TEXT_TO_VIDEO}),
        "big": frozenset({TaskType.TEXT_TO_VIDEO}),
        "voice": frozenset({TaskType.TEXT_TO_AUDIO}),
        "i2v": frozenset({TaskType.IMAGE_TO_VIDEO}),
        "sim": frozenset(TaskType),
    },
    output_dir=Path("/nonexistent"),
    max_story_chars=100,
    max_prompt_chars=50,
    max_title_chars=10,
    max_scenes=3,
    task_ttl_s=600,
    max_task_ttl_s=1000,
)
SCENES = {"scenes": [{"prompt": "a fox"}]}
AUDIO = {**SCENES, "task_type": "text_to_audio", "model": "voice"}


def story_error(body: object) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as caught:
        parse_story(body, SETTINGS)
    return caught.value


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**SCENES, "colour": "red"}, "colour"),
        ({}, "story_text"),
        ({**SCENES, "story_text": "both"}, "story_text"),
        ({"story_text": 5}, "story_text"),
        ({"story_text": "   "}, "story_text"),
        ({"story_text": "x" * 101}, "story_text"),
        ({"story_text": "nul\x00byte"}, "story_text"),
        ({"story_text": "lone \ud800 surrogate"}, "story_text"),
        ({"scenes": "a fox"}, "scenes"),
        ({"scenes": []}, "scenes"),
        ({"scenes": [{"prompt": "p"}] * 4}, "scenes"),
        ({"scenes": ["a fox"]}, "scenes[0]"),
        ({"scenes": [{"prompt": "ok"}, {"prompt": "ok", "image": "x"}]}, "scenes[1].image"),
        ({"scenes": [{"prompt": "ok"}, {}]}, "scenes[1].prompt"),
        ({"scenes": [{"prompt": "y" * 51}]}, "scenes[0].prompt"),
        ({**SCENES, "task_type": "text_to_smell"}, "task_type"),
        ({**SCENES, "task_type": "image_to_video"}, "task_type"),
        ({**SCENES, "model": "huge"}, "model"),
        ({**SCENES, "model": 3}, "model"),
        ({**SCENES, "title": "t" * 11}, "title"),
        ({**SCENES, "title": ""}, "title"),
        ({**SCENES, "webhook_url": 42}, "webhook_url"),
        ({**SCENES, "webhook_url": "https://x/" + "a" * 2048}, "webhook_url"),
        ({**SCENES, "start_within_s": 0}, "start_within_s"),
        ({**SCENES, "start_within_s": 1001}, "start_within_s"),
        ({**SCENES, "start_within_s": 10.5}, "start_within_s"),
        ({**SCENES, "start_within_s": True}, "start_within_s"),
        ({**SCENES, "params": []}, "params"),
        ({**SCENES, "params": {"num_frame": 9}}, "params.num_frame"),
        ({**SCENES, "params": {"width": 60}}, "params.width"),
        ({**SCENES, "params": {"width": 2056}}, "params.width"),
        ({**SCENES, "params": {"height": 100}}, "params.height"),  # not a multiple of 8
        ({**SCENES, "params": {"width": 256.0}}, "params.width"),
        ({**SCENES, "params": {"num_frames": 0}}, "params.num_frames"),
        ({**SCENES, "params": {"num_frames": 258}}, "params.num_frames"),
        ({**SCENES, "params": {"fps": 61}}, "params.fps"),
        ({**SCENES, "params": {"num_inference_steps": 0}}, "params.num_inference_steps"),
        ({**SCENES, "params": {"num_inference_steps": True}}, "params.num_inference_steps"),
        ({**SCENES, "params": {"guidance_scale": -0.5}}, "params.guidance_scale"),
        ({**SCENES, "params": {"guidance_scale": "5"}}, "params.guidance_scale"),
        ({**SCENES, "params": {"seed": -1}}, "params.seed"),
        ({**SCENES, "params": {"seed": 2**63}}, "params.seed"),
        ({**SCENES, "params": {"negative_prompt": "n" * 51}}, "params.negative_prompt"),
        ({**SCENES, "params": {"audio_length_s": 3.0}}, "params.audio_length_s"),
        ({**AUDIO, "params": {"width": 256}}, "params.width"),
        ({**AUDIO, "params": {"audio_length_s": 0.1}}, "params.audio_length_s"),
        ({**AUDIO, "params": {"audio_length_s": 601}}, "params.audio_length_s"),
        # Work no configured pool runs: the named pool (or the default one) cannot run the task type.
        ({**SCENES, "task_type": "text_to_audio"}, "task_type"),
        ({**SCENES, "task_type": "text_to_audio", "model": "big"}, "task_type"),
        ({**SCENES, "task_type": "text_to_video", "model": "voice"}, "task_type"),
        ({**SCENES, "model": "voice"}, "task_type"),  # the default task type, text_to_video
    ],
)
def test_story_rules_name_the_field(body, field):
    assert story_error(body).field == field


def test_story_body_must_be_an_object():
    error = story_error(["not", "an", "object"])
    assert error.status == 422 and error.field is None


def test_defaults_are_filled_in_and_valid_values_kept():
    story = parse_story(
        {
            "scenes": [{"prompt": "p"}],
            "model": "big",
            "params": {"width": 1024, "guidance_scale": 7, "seed": 0, "negative_prompt": ""},
        },
        SETTINGS,
    )
    assert story.model == "big" and story.prompts == ("p",)
    assert story.params.width == 1024 and story.params.height == 320 and story.params.guidance_scale == 7.0
    assert story.params.seed == 0 and story.params.negative_prompt == ""
    assert story.start_within_s == SETTINGS.task_ttl_s
    audio = parse_story({"story_text": "waves", "task_type": "text_to_audio", "model": "voice"}, SETTINGS)
    assert audio.params.width == 0 and audio.params.audio_length_s == 10.0
    assert parse_story({**SCENES, "task_type": "text_to_audio", "model": "sim"}, SETTINGS).model == "sim"


def test_an_unknown_model_names_the_pools():
    error = story_error({**SCENES, "model": "huge"})
    assert (error.status, error.field) == (422, "model")
    assert error.message == "no pool named 'huge'; pools: default, big, voice, i2v, sim"


def test_a_task_type_the_pool_cannot_run_says_what_would():
    error = story_error({**SCENES, "task_type": "text_to_audio"})
    assert (error.status, error.field) == (422, "task_type")
    assert error.message == (
        "pool 'default' runs text_to_video; text_to_audio needs a pool whose pipeline is text_to_audio "
        "(pools that run it: voice, sim)"
    )
    with pytest.raises(InvalidRequest) as caught:
        parse_job({"prompt": "p", "model": "big"}, SETTINGS, has_image=True)
    assert caught.value.field == "task_type"
    assert caught.value.message == (
        "pool 'big' runs text_to_video; image_to_video needs a pool whose pipeline is image_to_video "
        "(pools that run it: i2v, sim)"
    )
    only_video = dataclasses.replace(
        SETTINGS, pool_capabilities={"default": frozenset({TaskType.TEXT_TO_VIDEO})}
    )
    with pytest.raises(InvalidRequest, match=r"\(no configured pool runs it\)$") as caught:
        parse_job({"prompt": "p", "task_type": "text_to_audio"}, only_video, has_image=False)
    assert caught.value.field == "task_type"
    assert parse_job({"prompt": "p", "model": "i2v"}, SETTINGS, has_image=True).model == "i2v"


@pytest.mark.parametrize(
    ("body", "has_image", "field"),
    [
        ({}, False, "prompt"),
        ({"prompt": "z" * 51}, False, "prompt"),
        ({"prompt": "p", "scenes": []}, False, "scenes"),
        ({"prompt": "p", "task_type": "image_to_video"}, False, "image"),
        ({"prompt": "p", "task_type": "text_to_video"}, True, "task_type"),
    ],
)
def test_job_rules_name_the_field(body, has_image, field):
    with pytest.raises(InvalidRequest) as caught:
        parse_job(body, SETTINGS, has_image=has_image)
    assert caught.value.field == field


def test_an_image_makes_a_job_image_to_video():
    job = parse_job({"prompt": "p", "model": "i2v"}, SETTINGS, has_image=True)
    assert job.task_type == TaskType.IMAGE_TO_VIDEO


@pytest.mark.parametrize("body", [b"{", b'{"a": NaN}', b'{"a": Infinity}', b"\xff", b"1" * 5000])
def test_malformed_json_is_400(body):
    with pytest.raises(MalformedRequest):
        parse_json(body)


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/hook",
        "javascript:alert(1)",
        "https:///nohost",
        "https://user:pw@93.184.215.14/",
        "http://127.0.0.1/hook",
        "http://localhost:8080/hook",
        "http://10.1.2.3/",
        "http://192.168.0.1/",
        "http://172.16.0.1/",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/",
        "http://[fe80::1]/",
        "http://[::ffff:127.0.0.1]/",
        "http://0.0.0.0/",
        "http://224.0.0.1/",
        "https://host.invalid/",
        "http://[::1/",
        "http://100.64.0.1/hook",  # shared address space (carrier-grade NAT)
        "http://[2002:c0a8:101::1]/",  # 6to4
        "http://[2001::1]/",  # Teredo
        "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
        "http://198.18.0.1/",  # benchmarking
        "http://[fd00::1]/",
        "http://metadata.google.internal/",
        "http://metadata/",  # a single label is completed inside our network
    ],
)
def test_webhook_urls_that_are_refused(url):
    with pytest.raises(InvalidRequest) as caught:
        asyncio.run(check_webhook_url(url, allow_private=False))
    assert caught.value.field == "webhook_url"


@pytest.mark.parametrize(
    ("url", "named"),
    [
        ("http://100.64.0.1/", "100.64.0.0/10 (shared address space"),
        ("http://[2002::1]/", "2002::/16 (6to4)"),
        ("http://[::ffff:127.0.0.1]/", "embeds 127.0.0.1, in 127.0.0.0/8 (loopback)"),
        ("http://localhost/", "loopback name"),
    ],
)
def test_a_refused_webhook_url_names_the_range(url, named):
    with pytest.raises(InvalidRequest) as caught:
        asyncio.run(check_webhook_url(url, allow_private=False))
    assert "webhook_url" in str(caught.value) and named in str(caught.value)


def test_public_webhook_urls_pass_and_private_ones_when_allowed():
    assert asyncio.run(check_webhook_url("https://93.184.215.14:8443/hook", allow_private=False))
    assert asyncio.run(check_webhook_url("http://127.0.0.1:9000/hook", allow_private=True))
    assert asyncio.run(check_webhook_url("http://[2606:4700:4700::1111]/hook", allow_private=False))
    assert asyncio.run(check_webhook_url("http://100.64.0.1/hook", allow_private=True))
    with pytest.raises(InvalidRequest):  # the scheme rule holds even then
        asyncio.run(check_webhook_url("file:///etc/passwd", allow_private=True))


HOOK = {**SCENES, "webhook_url": "https://example.com/hook"}


@pytest.mark.parametrize(
    ("events", "message"),
    [
        (["started", "finished", "begun"], "unknown webhook events begun, finished; choose from started"),
        ([], "must name at least one"),
        ("completed", "a list of names"),
        ([1], "a list of names"),
    ],
)
def test_webhook_events_must_be_a_list_of_known_names(events, message):
    error = story_error({**HOOK, "webhook_events": events})
    assert (error.status, error.field) == (422, "webhook_events") and message in error.message
    with pytest.raises(InvalidRequest) as caught:
        job = {"prompt": "p", "webhook_url": HOOK["webhook_url"], "webhook_events": events}
        parse_job(job, SETTINGS, has_image=False)
    assert caught.value.field == "webhook_events"


def test_webhook_events_need_a_webhook_url():
    error = story_error({**SCENES, "webhook_events": ["completed"]})
    assert (error.field, error.message) == ("webhook_events", "webhook_events needs a webhook_url to call")
    assert parse_story({**SCENES, "webhook_events": None}, SETTINGS).webhook_events == ()


def test_webhook_events_are_kept_in_event_order_and_the_default_as_none_chosen():
    chosen = parse_story({**HOOK, "webhook_events": ["completed", "started", "started"]}, SETTINGS)
    assert chosen.webhook_events == ("started", "completed")
    every = parse_story({**HOOK, "webhook_events": ["progress", "completed", "started"]}, SETTINGS)
    assert every.webhook_events == ("started", "progress", "completed")
    default = parse_story({**HOOK, "webhook_events": ["completed"]}, SETTINGS)
    assert default.webhook_events == () and default == parse_story(HOOK, SETTINGS)


def test_the_filter_is_part_of_a_requests_fingerprint_and_absent_when_default():
    plain = parse_story(HOOK, SETTINGS)
    assert b"webhook_events" not in plain.canonical()  # fingerprints from before the filter still match
    started = parse_story({**HOOK, "webhook_events": ["started", "completed"]}, SETTINGS)
    assert started.canonical() != plain.canonical()
    assert b'"webhook_events": ["started", "completed"]' in started.canonical()
