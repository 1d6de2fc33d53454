"""The sketchpad of "Your digit through the BFN", whose drawings the app decodes itself, bounded by pixels.

Gradio's ImageEditor decodes whatever image it is sent into a full-size array before a handler sees it: a PNG of
12000×12000 one-bit pixels is 32 KB on the wire and gigabytes once decoded. So the events that take a drawing
run with `preprocess=False` and their handler decodes it (`inputs.drawing_image`, through
`bfn.digits.load_image`: the size checked before any pixel is decoded). This pad differs from `gr.Sketchpad` in
only what that needs:

* it takes any value an API caller sends (`AnyValue`), so that "hello" as the drawing is told in the app's
  words by the handler, not as a pydantic "validation error for EditorData";
* a browser uploads its drawing ahead of the event (`accept_blobs`) and sends only an id; those uploads wait in
  memory for their event, and here they are bounded in number and bytes (`Blobs`), the oldest going first.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import gradio as gr
from gradio.components.base import server
from gradio.components.image_editor import AcceptBlobs, EditorData
from gradio.data_classes import GradioRootModel

MAX_BLOB_IDS = 64  # drawings uploaded ahead of their event and waiting for it (a browser's wait is milliseconds)
MAX_BLOB_BYTES = 16 << 20  # their bytes, all together (a sketchpad's drawing is a PNG of a few KB)
MAX_ID_CHARS = 64  # a browser's ids are ~11 characters
MAX_LAYERS = 4  # the pad has one layer; room for a few


class AnyValue(GradioRootModel):
    """Any value: what the drawing is, and what is wrong with it, the handler says."""

    root: Any = None


@dataclass
class Upload:
    """A drawing a browser uploaded ahead of its event: the PNG bytes of each part."""

    background: bytes | None = None
    layers: list[bytes | None] = field(default_factory=list)
    composite: bytes | None = None

    @property
    def nbytes(self) -> int:
        return sum(len(b) for b in (self.background, self.composite, *self.layers) if b is not None)

    def as_value(self) -> dict[str, Any]:
        """The drawing as the handler reads it (`inputs.drawing_image`)."""
        return {"background": self.background, "layers": [b for b in self.layers if b is not None], "composite": self.composite}


class Blobs:
    """Drawings uploaded ahead of their event, by id: at most `max_ids` of them and `max_bytes` in all, the oldest
    dropped first (their event, if it ever comes, then finds the drawing empty)."""

    def __init__(self, max_ids: int = MAX_BLOB_IDS, max_bytes: int = MAX_BLOB_BYTES):
        self.max_ids, self.max_bytes = max_ids, max_bytes
        self._uploads: OrderedDict[str, Upload] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._uploads)

    @property
    def nbytes(self) -> int:
        return sum(u.nbytes for u in self._uploads.values())

    def put(self, upload_id: str, part: str, index: int | None, data: bytes) -> None:
        """Keep one part ("background", "composite" or "layer" `index`) of upload `upload_id`."""
        with self._lock:
            upload = self._uploads.pop(upload_id, None) or Upload()
            if part == "layer" and index is not None:
                upload.layers.extend([None] * (index + 1 - len(upload.layers)))
                upload.layers[index] = data
            elif part in ("background", "composite"):
                setattr(upload, part, data)
            self._uploads[upload_id] = upload
            total = sum(u.nbytes for u in self._uploads.values())
            while self._uploads and (len(self._uploads) > self.max_ids or total > self.max_bytes):
                _, old = self._uploads.popitem(last=False)
                total -= old.nbytes

    def take(self, upload_id: Any) -> dict[str, Any] | None:
        """The drawing uploaded as `upload_id`, forgotten here (None if there is none)."""
        if not isinstance(upload_id, str):
            return None
        with self._lock:
            upload = self._uploads.pop(upload_id, None)
        return None if upload is None else upload.as_value()


class DrawingPad(gr.Sketchpad):
    """`gr.Sketchpad`, drawn by the same component in the browser, whose value its events decode themselves (with
    `preprocess=False`, reading the uploads in `blobs`).

    Args:
        blobs: where the browser's uploads wait for their event.
        **options: as for `gr.Sketchpad`.
    """

    data_model = AnyValue

    def __init__(self, *, blobs: Blobs, **options: Any):
        super().__init__(**options)
        self.blobs = blobs

    def get_block_name(self) -> str:
        return "imageeditor"  # the browser's component: the pad is a Sketchpad there

    def get_config(self, cls: type | None = None) -> dict[str, Any]:
        """The Sketchpad's props: Gradio reads them from the parameters of `cls.__init__`, and this class's own
        (`blobs`) would leave the browser's sketchpad without its layers, canvas and brush (it then failed to
        start: "Cannot read properties of undefined (reading 'container')")."""
        return super().get_config(gr.Sketchpad if cls is None else cls)

    def api_info(self) -> dict[str, Any]:
        """What API callers are told to send: the sketchpad's value (anything else is refused by the handler)."""
        schema = EditorData.model_json_schema()
        schema["additional_description"] = schema.pop("description", None)
        return schema

    @server
    def accept_blobs(self, data: AcceptBlobs) -> None:
        """A browser's upload of one part of its drawing, kept in `blobs` until its event; one with an id, part or
        index no browser sends is ignored."""
        fields, files = data.data, data.files
        upload_id, part, index = fields.get("id"), fields.get("type"), fields.get("index")
        index = int(index) if isinstance(index, str) and index.isascii() and index.isdigit() else None
        if not (isinstance(upload_id, str) and 0 < len(upload_id) <= MAX_ID_CHARS) or not files:
            return
        if part == "layer" and (index is None or index >= MAX_LAYERS):
            return
        self.blobs.put(upload_id, part, index, files[0][1])
