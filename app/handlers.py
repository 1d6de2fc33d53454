"""The app's event handlers: settings in, `Views` out. No layout (that is `app.layout`) and no maths: runs come
from `app.session`, pictures and figures from `app.render`.

Every handler says what it shows as a `Views`; `Views.outputs` lays it out in the order of the components the
layout wired to that event, with every view it leaves unset sent as `gr.skip()` (unchanged in the browser).
The layout builds its component lists with the same method, from a `Views` of components, so the two orders
cannot drift apart, and adding a view is one field here.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import logging
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from gradio.components.plot import PlotData

from app import figures, render
from app.fairshare import StreamBudget
from app.frames import Frames
from app.models import ModelBank
from app.params import MAX_STEPS, parse_click, parse_int, parse_settings, plural
from app.session import Run, RunState, RunTooLarge, Session, SessionStore

log = logging.getLogger(__name__)

MAX_CONCURRENT_RUNS = 8  # generations sampling at once, taking turns on the CPU; more wait in the queue (position shown)
STREAM_INTERVAL_S = 0.1  # at most ~10 image updates per second per session
PLOT_INTERVAL_S = 0.5  # the Plotly figures, heavier for the browser, at most ~2 per second while live
PLAY_SECONDS, PLAY_FPS = 4.0, 12
STATE_COLOURS = {
    RunState.RUNNING: "#4f46e5", RunState.DONE: "#16a34a", RunState.STOPPED: "#b45309", RunState.FAILED: "#dc2626",
}  # fmt: skip


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()  # a view the event leaves as it is in the browser


def _per_model(width: int) -> Any:
    """A view with `width` components per model: its value maps a model's name to them (a tuple if width > 1)."""
    return field(default=UNSET, metadata={"per_model": width})


@dataclass
class Views:
    """What an event shows (or, in the layout, the components that show it), one field per view.

    Attributes:
        status: the Markdown status line.
        images: per model name, its (θ image, output image); (None, None) clears a model not in the run.
        slider: the step slider.
        heatmap, trajectories, summary, beliefs: the four Plotly figures.
        columns: per model name, its column (shown or hidden); only /generate sets it.
    """

    status: Any = UNSET
    images: Any = _per_model(2)
    slider: Any = UNSET
    heatmap: Any = UNSET
    trajectories: Any = UNSET
    summary: Any = UNSET
    beliefs: Any = UNSET
    columns: Any = _per_model(1)

    def outputs(self, names: Sequence[str], fields: Sequence[str]) -> list:
        """The values of `fields`, in that order, models in the order of `names`; unset ones as gr.skip()."""
        widths = {f.name: f.metadata.get("per_model") for f in dataclasses.fields(self)}
        out: list = []
        for name in fields:
            value, width = getattr(self, name), widths[name]
            if width is None:
                out.append(gr.skip() if value is UNSET else value)
                continue
            for model in names:
                if value is UNSET:
                    parts = (UNSET,) * width
                else:
                    parts = value[model] if width > 1 else (value[model],)
                out += [gr.skip() if part is UNSET else part for part in parts]
        return out


GENERATED = tuple(f.name for f in dataclasses.fields(Views))  # /generate: every view, the models' columns too
SHOWN = tuple(name for name in GENERATED if name != "columns")  # /stop, /scrub, /play
PIXEL = ("heatmap", "trajectories", "beliefs")  # /add_pixel, /clear_pixels and clicks on an image


def plot(fig: figures.Figure) -> PlotData:
    """A figure dict for gr.Plot, serialised once here (typed arrays, no plotly validation)."""
    return PlotData(type="plotly", plot=figures.figure_json(fig))


def _session_id(request: gr.Request | None) -> str:
    return (request.session_hash if request is not None else None) or "anonymous"


def _folder_name(session_id: str) -> str:
    """The export folder of a session: a hash of its id, so that every id has a folder of its own inside the
    export root (an id stripped to a safe name could be empty, the root itself, or equal another's)."""
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _invalid(error: ValueError) -> gr.Error:
    """The caller's mistake, told to the caller; logged in one line (the message quotes values only cut short,
    `app.params.echo`), not as a server traceback."""
    log.info("invalid input: %s", error)
    return gr.Error(str(error), title="Invalid input", print_exception=False)


def _raise_if_failed(run: Run) -> None:
    """Report a failed producer at once, even while the run's other model is still sampling."""
    if run.error:
        raise gr.Error(f"Sampling failed: {run.error}", title="Sampling failed")


class Handlers:
    """The app's handlers, bound to the shared models and the session store."""

    def __init__(
        self,
        bank: ModelBank,
        store: SessionStore | None = None,
        *,
        stream_interval: float = STREAM_INTERVAL_S,
        plot_interval: float = PLOT_INTERVAL_S,
        max_concurrent: int = MAX_CONCURRENT_RUNS,
    ):
        self.bank = bank
        self.menu = bank.menu
        self.store = store or SessionStore()
        self.stream_interval = stream_interval
        self.plot_interval = plot_interval
        self.max_concurrent = max_concurrent
        self.streams = StreamBudget()  # every stream of views (generations, duels, completions) paces within it
        self.export_dir = Path(tempfile.mkdtemp(prefix="bfn-studio-"))  # one file per session, dropped with it
        atexit.register(shutil.rmtree, self.export_dir, ignore_errors=True)  # for whoever forgets `close`

    def close(self) -> None:
        """The server is going away: stop every run and remove every session's exports."""
        self.store.close()
        shutil.rmtree(self.export_dir, ignore_errors=True)

    def outputs(self, views: Views, fields: Sequence[str] = SHOWN) -> list:
        return views.outputs(self.menu.names, fields)

    # ------------------------------------------------------------------------------------------ views
    def _status(self, run: Run, step: int, note: str = "") -> str:
        n = run.num_steps
        elapsed = (run.ended or time.monotonic()) - run.started
        state = f'<span style="color:{STATE_COLOURS[run.state]}">●</span> **{run.state.value.capitalize()}**'
        fr = next(iter(run.frames.values()))
        t = float(fr.t[step]) if step >= 0 else 0.0
        parts = [f"{state} — step {max(step, 0)} of {n} (t = {t:.3f})"]
        for name, frames in run.frames.items():
            if frames.precision is not None and step >= 0:  # θ holds a precision: say how sure it is
                rho = float(frames.precision[step].mean())
                parts.append(f"{name} ρ = {rho:.3g}, σ = {1 / math.sqrt(rho):.3g}")
        done = max(run.latest, 0)  # state 0 is the prior: step k is the k-th update
        if run.running:
            parts.append(f"{done} of {plural(n, 'step')} sampled")
        else:
            parts.append(f"{plural(done, 'step')} in {elapsed:.1f} s")
        line = " · ".join(parts)
        if note:
            line += f" · {note}"
        return f"{line}  \n<small>{run.settings.describe()}</small>"

    def _pixel_views(self, session: Session, run: Run, step: int) -> Views:
        """The figures of `run` that follow the session's chosen pixels and the image chosen last.

        Every view takes the run it shows from its caller, never from `session.run` again: while a stream
        draws its last update, the store may drop that ended run from the session (another session's run
        needed the memory), and the stream still has its frames to finish with.
        """
        return Views(
            heatmap=plot(render.pixel_heatmap(run.frames, step, session.image, session.pixels, run.labels)),
            trajectories=plot(render.trajectories(run.frames, step, session.pixels)),
            beliefs=plot(render.digit_beliefs(run.frames, step, session.image, run.labels)),
        )

    def _views(self, session: Session, run: Run, step: int, *, plots: bool = True, slider: bool = True, note: str = "") -> Views:
        """Every view of `run` at `step`; the figures only if `plots`, the slider only if `slider` (else left as
        they are)."""
        frames = run.frames
        views = self._pixel_views(session, run, step) if plots else Views()
        views.status = self._status(run, step, note)
        views.images = {name: (None, None) for name in self.menu.names}  # clears the models not in the run
        for name, fr in frames.items():
            views.images[name] = (render.theta_image(fr, step), render.output_image(fr, step))
        if slider:
            views.slider = gr.Slider(value=step, maximum=run.num_steps)
        if plots:
            views.summary = plot(render.step_summary(frames, step))
        return views

    def _session_run(self, request: gr.Request | None) -> tuple[Session, Run | None]:
        session = self.store.get(_session_id(request))
        return session, session.run

    # --------------------------------------------------------------------------------------- handlers
    def generate(
        self, model: Any, digits: Any, digit: Any, guidance: Any, steps: Any, seed: Any, sampler: Any, request: gr.Request
    ) -> Iterator[list]:
        """Sample digits and stream the views while it runs; the last update is the final state."""
        try:
            settings = parse_settings(model, digits, digit, guidance, steps, seed, sampler, menu=self.menu)
        except ValueError as e:
            raise _invalid(e) from None
        sid = _session_id(request)
        try:
            run = self.store.start_run(sid, settings, self.bank.models, self.bank.classifier)
        except RunTooLarge as e:
            raise _invalid(e) from None
        session = self.store.get(sid)
        columns: Any = {name: gr.Column(visible=name in run.frames) for name in self.menu.names}
        try:
            with self.streams.stream():
                yield from self._stream_run(session, run, columns)
        finally:
            if run.running:  # the client went away or the event was cancelled
                run.stop()

    def _stream_run(self, session: Session, run: Run, columns: Any) -> Iterator[list]:
        """The views of `run` while it samples, paced by the stream budget; the last update is where it ended."""
        sent, sent_final = -1, False
        pace = self.streams.pace(self.stream_interval, self.plot_interval)
        while True:
            latest = run.wait(sent, timeout=1.0)
            _raise_if_failed(run)
            if latest > sent:
                if run.running:
                    pace.wait()
                latest = run.latest
                final = not run.running
                plots = pace.update(final)
                rate = pace.rate
                note = f"{rate:.1f} updates/s" if rate else ""
                if run.follow_live:
                    session.step = latest
                    views = self._views(session, run, latest, plots=plots, note=note)
                else:
                    note = f"viewing step {session.step} — drag to the end to follow"
                    views = Views(status=self._status(run, latest, note=note))
                views.columns = columns
                yield self.outputs(views, GENERATED)
                columns = UNSET  # sent once, with the first update
                sent, sent_final = latest, final
            if not run.running and run.latest <= sent:
                break
        _raise_if_failed(run)
        if not sent_final:  # the run ended after the last update: always show where it ended
            step = session.step if not run.follow_live else run.latest
            session.step = step
            views = self._views(session, run, step)
            views.columns = columns
            yield self.outputs(views, GENERATED)

    def stop(self, request: gr.Request) -> list:
        """Stop this session's run (and any playback) and show its last recorded step."""
        session, run = self._session_run(request)
        if run is None:
            return self.outputs(Views(status="Nothing is running."))
        run.stop(wait=2.0)
        run.follow_live = True
        if run.latest < 0:
            return self.outputs(Views(status="Stopped before the first step."))
        session.step = run.latest
        return self.outputs(self._views(session, run, run.latest))

    def scrub(self, step: Any, request: gr.Request) -> list:
        """Show every view at `step` (clamped to the steps recorded so far)."""
        try:
            step = parse_int("step", step, 0, MAX_STEPS)
        except ValueError as e:
            raise _invalid(e) from None
        session, run = self._session_run(request)
        if run is None or run.latest < 0:
            return self.outputs(Views(status="Press **Generate** first: there is no run to scrub through yet."))
        run.touch()
        latest = run.latest
        run.follow_live = step >= latest  # dragging to the newest step follows the live run again
        shown = min(step, latest)
        session.step = shown
        return self.outputs(self._views(session, run, shown, slider=shown != step))

    def play(self, request: gr.Request) -> Iterator[list]:
        """Replay the recorded run from the step on show (or from the start) to its last step, in ~4 s."""
        session, run = self._session_run(request)
        if run is None or run.latest < 0:
            raise gr.Error("Nothing to play yet: press Generate first.", title="No run")
        run.follow_live = False
        end = run.latest
        start = session.step if session.step < end else 0
        stride = max(1, math.ceil((end - start) / (PLAY_SECONDS * PLAY_FPS)))
        steps = list(range(start, end, stride)) + [end]
        next_at = time.monotonic()
        for k, step in enumerate(steps):
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            next_at = time.monotonic() + 1 / PLAY_FPS
            session.step = step
            last = k == len(steps) - 1
            yield self.outputs(self._views(session, run, step, plots=last or k % 4 == 0, note="▶ playing" if not last else ""))
        run.follow_live = True

    def _follow(self, session: Session) -> list:
        """The pixel views after the chosen pixels changed (nothing to redraw before the first step)."""
        run = session.run
        if run is None or run.latest < 0:
            return self.outputs(Views(), PIXEL)
        return self.outputs(self._pixel_views(session, run, min(session.step, run.latest)), PIXEL)

    def add_pixel(self, image: Any, row: Any, col: Any, request: gr.Request) -> list:
        """Follow (or stop following) pixel (row, col) of image `image`."""
        session, run = self._session_run(request)
        batch = len(run.labels) if run is not None else self.menu.num_labels
        height, width = (run.settings.label_set if run is not None else self.menu.label_set(self.menu.names[0])).shape
        try:
            pixel = (parse_int("image", image, 0, batch - 1), parse_int("row", row, 0, height - 1),
                     parse_int("col", col, 0, width - 1))
        except ValueError as e:
            raise _invalid(e) from None
        session.add_pixel(pixel)
        return self._follow(session)

    def click_pixel(self, click: Any, request: gr.Request) -> list:
        """A click on any of the images, as "x,y" in image pixels (sent by the layout's click script): follow that
        pixel. → the `PIXEL` views, then the pixel's image, row and column, for the boxes that name a pixel."""
        session, run = self._session_run(request)
        unchanged = self.outputs(Views(), PIXEL) + [gr.skip()] * 3
        if run is None:
            return unchanged
        layout = render.GridLayout(len(run.labels), run.settings.label_set.shape)
        try:
            x, y = parse_click(click, layout.width, layout.height)
        except ValueError as e:
            raise _invalid(e) from None
        pixel = layout.locate(x, y)
        if pixel is None:  # on the padding between images
            return unchanged
        session.add_pixel(pixel)
        return self._follow(session) + list(pixel)

    def clear_pixels(self, request: gr.Request) -> list:
        session, _ = self._session_run(request)
        session.pixels.clear()
        return self._follow(session)

    def _export(self, request: gr.Request | None, suffix: str, make: Callable[[Mapping[str, Frames]], bytes]) -> str:
        """Write `make(run.frames)` (the bytes of a file) for this session's run and return the file's path."""
        _, run = self._session_run(request)
        if run is None or run.latest < 0:
            raise gr.Error("Nothing to export yet: press Generate first.", title="No run")
        folder = self.export_dir / _folder_name(_session_id(request))
        folder.mkdir(parents=True, exist_ok=True)
        s = run.settings
        path = folder / f"bfn-{s.model}-{s.digits}-w{s.guidance:g}-n{s.steps}-seed{s.seed}.{suffix}"
        path.write_bytes(make(run.frames))
        return str(path)

    def export_gif(self, request: gr.Request) -> str:
        """The run (up to its last recorded step) as an animated GIF."""
        return self._export(request, "gif", render.animation_gif)

    def export_png(self, request: gr.Request) -> str:
        """The generated digits (for a stopped run: its last output distribution) as a PNG grid."""
        return self._export(request, "png", lambda frames: render.png_bytes(render.final_picture(frames)))

    def forget(self, request: gr.Request) -> None:
        """The tab was closed: stop and drop the session's run and exported files."""
        sid = _session_id(request)
        self.store.drop(sid)
        shutil.rmtree(self.export_dir / _folder_name(sid), ignore_errors=True)
