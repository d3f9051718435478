"""Our messages' content, read for the wire formats that are not OpenAI's.

Requests arrive in OpenAI's chat format: a message's `content` is a string or
a list of parts (`{"type": "text", "text"}`, `{"type": "image_url",
"image_url": {"url"}}`). Anthropic and Gemini want their own block shapes;
this module yields the parts as `Part`s (text or image, with the part's
`cache_control` when the client set one) that their adapters render.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tierline.schemas.messages import ChatMessage


@dataclass(frozen=True, slots=True)
class Part:
    kind: str  # "text" | "image"
    text: str = ""
    #: for images: the URL, or the MIME type and base64 data of a `data:` URL
    url: str = ""
    mime: str = ""
    data: str = ""
    cache_control: dict[str, Any] | None = None


def parts_of(message: ChatMessage) -> list[Part]:
    content = message.content
    if content is None:
        return []
    if isinstance(content, str):
        return [Part("text", text=content)] if content else []
    out: list[Part] = []
    for raw in content:
        cache = raw.get("cache_control")
        cache = cache if isinstance(cache, dict) else None
        kind = raw.get("type")
        if kind == "text":
            out.append(Part("text", text=str(raw.get("text", "")), cache_control=cache))
        elif kind == "image_url":
            spec = raw.get("image_url")
            url = str(spec.get("url", "")) if isinstance(spec, dict) else str(spec or "")
            mime, data = split_data_url(url)
            out.append(Part("image", url=url, mime=mime, data=data, cache_control=cache))
    return out


def split_data_url(url: str) -> tuple[str, str]:
    """(MIME type, base64 data) of a `data:<mime>;base64,<data>` URL; ("", "") otherwise."""
    if not url.startswith("data:"):
        return "", ""
    head, _, data = url[5:].partition(",")
    mime, _, encoding = head.partition(";")
    if encoding != "base64" or not data:
        return "", ""
    return mime or "application/octet-stream", data
