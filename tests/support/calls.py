"""Raw calls to a served app, as any HTTP client can make them: an event by its API name or by its index (the
browser's way, which reaches private events too), with any JSON at all as its inputs; and uploads."""

from __future__ import annotations

import io
import json
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
from PIL import Image

TIMEOUT = 60.0


@dataclass(frozen=True)
class Outcome:
    """How a call ended: its last outputs, or the error message the app sent (`error`, None if it succeeded)."""

    data: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def _body(data: list, **fields: Any) -> bytes:
    """The request's JSON as written by hand, so that NaN goes as it is (httpx refuses to encode it)."""
    return json.dumps({"data": data, **fields}).encode()


def call(url: str, api_name: str, data: list, session: str | None = None) -> Outcome:
    """POST /gradio_api/call/<api_name> and read its events to the end (a stream's last update is its data)."""
    fields = {"session_hash": session} if session else {}
    r = httpx.post(f"{url}gradio_api/call/{api_name}", content=_body(data, **fields), headers={"content-type": "application/json"}, timeout=TIMEOUT)
    r.raise_for_status()
    outcome, event = Outcome(), None
    with httpx.stream("GET", f"{url}gradio_api/call/{api_name}/{r.json()['event_id']}", timeout=TIMEOUT) as events:
        for line in events.iter_lines():
            if line.startswith("event:"):
                event = line.removeprefix("event:").strip()
            elif line.startswith("data:") and event in ("generating", "complete"):
                outcome = Outcome(data=json.loads(line.removeprefix("data:")))
            elif line.startswith("data:") and event == "error":
                payload = json.loads(line.removeprefix("data:"))
                return Outcome(error=payload.get("error") if isinstance(payload, dict) else str(payload))
    return outcome


def call_fn(url: str, fn: Any, data: list, session: str | None = None) -> Outcome:
    """Call event `fn` (a Blocks' `BlockFunction`) by its index, as the browser does: through the queue, or
    /gradio_api/run/predict for an event outside it."""
    session = session or uuid.uuid4().hex
    body = _body(data, fn_index=fn._id, session_hash=session, event_data=None, trigger_id=None)
    headers = {"content-type": "application/json"}
    if not fn.queue:
        r = httpx.post(f"{url}gradio_api/run/predict", content=body, headers=headers, timeout=TIMEOUT)
        payload = r.json()
        return Outcome(error=str(payload.get("error"))) if r.status_code != 200 or "error" in payload else Outcome(payload.get("data"))
    r = httpx.post(f"{url}gradio_api/queue/join", content=body, headers=headers, timeout=TIMEOUT)
    if r.status_code != 200:
        return Outcome(error=f"HTTP {r.status_code}: {r.text[:200]}")
    with httpx.stream("GET", f"{url}gradio_api/queue/data?session_hash={session}", timeout=TIMEOUT) as events:
        for line in events.iter_lines():
            message = json.loads(line.removeprefix("data:")) if line.startswith("data:") else {}
            if message.get("msg") == "process_completed":
                output = message.get("output") or {}
                return Outcome(output.get("data")) if message.get("success") else Outcome(error=str(output.get("error")))
    return Outcome(error="the stream ended without completing")


def upload(url: str, name: str, content: bytes) -> dict:
    """Upload a file as a client does; → the file as an event's input (FileData)."""
    r = httpx.post(f"{url}gradio_api/upload", files={"files": (name, content)}, timeout=TIMEOUT)
    r.raise_for_status()
    return {"path": r.json()[0], "orig_name": name, "meta": {"_type": "gradio.FileData"}}


def png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


def drawing(composite: Any = None, background: Any = None, layers: list | None = None) -> dict:
    """A sketchpad value as an API client sends it."""
    return {"background": background, "layers": layers or [], "composite": composite, "id": None}
