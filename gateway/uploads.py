"""The multipart form of ``POST /v1/jobs``: its fields as a job body, and its image checked by magic bytes.

Form fields are text: ``params`` is JSON text, ``start_within_s`` a decimal integer and ``webhook_events``
names separated by commas; the job rules of :mod:`gateway.validation` then check them as for JSON.

The accepted image types live here, so the handler that reads uploads and the OpenAPI document that
describes them name the same ones.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request

from gateway.exceptions import InvalidRequest, MalformedRequest, PayloadTooLarge
from gateway.settings import GatewaySettings
from gateway.validation import parse_json

# Magic bytes of the image types we accept, and the extension each is stored under.
IMAGE_TYPES = {
    "image/png": (b"\x89PNG\r\n\x1a\n", ".png"),
    "image/jpeg": (b"\xff\xd8\xff", ".jpg"),
    "image/webp": (b"RIFF", ".webp"),
}
JOB_FORM_FIELDS = (
    "prompt",
    "task_type",
    "model",
    "title",
    "webhook_url",
    "webhook_events",
    "start_within_s",
    "params",
)


@dataclass(frozen=True, slots=True)
class Upload:
    """An input image, checked, waiting to be stored."""

    data: bytes
    media_type: str
    extension: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


async def read_job_form(request: Request, settings: GatewaySettings) -> tuple[dict[str, Any], Upload | None]:
    """The multipart form of ``POST /v1/jobs`` as a job body, plus its checked image."""
    try:
        form = await request.form(
            max_files=1, max_fields=len(JOB_FORM_FIELDS), max_part_size=settings.max_body_bytes
        )
    except HTTPException as exc:
        raise MalformedRequest(f"multipart body could not be read: {exc.detail}") from None
    try:
        fields: dict[str, Any] = {}
        upload = None
        for name, value in form.multi_items():
            if name in fields or (name == "image" and upload is not None):
                raise InvalidRequest(f"{name} is given more than once", field=name)
            if isinstance(value, UploadFile):
                if name != "image":
                    raise InvalidRequest(f"only 'image' may be a file, not {name!r}", field=name)
                upload = await _image(value, settings.max_image_bytes)
            elif name == "params":
                fields[name] = parse_json(value.encode("utf-8", "surrogatepass"))
            elif name == "start_within_s":
                fields[name] = _form_int(value, name)
            elif name == "webhook_events":  # names separated by commas: started,completed
                fields[name] = [part.strip() for part in value.split(",")] if value.strip() else []
            else:
                fields[name] = value
        return fields, upload
    finally:
        await form.close()


async def _image(upload: UploadFile, max_bytes: int) -> Upload:
    media_type = (upload.content_type or "").split(";", 1)[0].strip().lower()
    if media_type not in IMAGE_TYPES:
        raise InvalidRequest(
            f"image must be one of {sorted(IMAGE_TYPES)}, got {media_type or 'none'}", field="image"
        )
    data = await upload.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise PayloadTooLarge(f"image is larger than {max_bytes} bytes", field="image")
    magic, extension = IMAGE_TYPES[media_type]
    if not data.startswith(magic) or (media_type == "image/webp" and data[8:12] != b"WEBP"):
        raise InvalidRequest(f"image content is not {media_type}", field="image")
    return Upload(data, media_type, extension)


def _form_int(value: str, name: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise InvalidRequest(f"{name} must be an integer", field=name) from None
