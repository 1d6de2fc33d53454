"""The generation's events: settings in, `Views` out. No layout (that is `layout.py`) and no maths: runs come from
`app.core`, pictures and figures from `app.ui` and `figures.py`, exports from `exports.py`.
"""

from __future__ import annotations

import atexit
import dataclasses
import hashlib
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from app.core.frames import Frames
from app.core.runs import Run, RunTooLarge
from app.core.settings import MAX_APP_STEPS, parse_choice, parse_click, parse_int, parse_settings, plural
from app.core.store import GENERATION, Session
from app.features.generate import exports, figures
from app.ui import images
from app.ui.context import Context
from app.ui.figures import clamp, pixel_heatmap, shared_time
from app.ui.files import write_atomically
from app.ui.views import NOTHING_SAMPLED, UNSET, ViewSet, invalid, parsed, per_model, plot, ran_for, session_id, status

PLAY_SECONDS, PLAY_FPS = 4.0, 12


@dataclass
class Views(ViewSet):
    """What an event of the generation shows (or, in the layout, the components that show it), one field per view.

    Attributes:
        status: the Markdown status line.
        images: per model name, its (θ image, output image); (None, None) clears a model not in the run.
        slider: the step slider.
        heatmap, trajectories, summary, beliefs: the four Plotly figures.
        columns: per model name, its column (shown or hidden); only /generate sets it.
    """

    status: Any = UNSET
    images: Any = per_model(2)
    slider: Any = UNSET
    heatmap: Any = UNSET
    trajectories: Any = UNSET
    summary: Any = UNSET
    beliefs: Any = UNSET
    columns: Any = per_model(1)


GENERATED = tuple(f.name for f in dataclasses.fields(Views))  # /generate: every view, the models' columns too
SHOWN = tuple(name for name in GENERATED if name != "columns")  # /stop, /scrub, /play
PIXEL = ("heatmap", "trajectories", "beliefs")  # /add_pixel, /clear_pixels and clicks on an image


def _folder_name(sid: str) -> str:
    """The export folder of a session: a hash of its id, so that every id has a folder of its own inside the
    export root (an id stripped to a safe name could be empty, the root itself, or equal another's)."""
    return hashlib.sha256(sid.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _nothing_sampled(run: Run) -> str:
    """The status of a run that ended (was stopped) before its first step."""
    return status(run, NOTHING_SAMPLED, run.settings.describe())


class GenerateHandlers:
    """The generation's handlers, on the app's `Context`; its exports are files of their own, one folder per
    session, dropped with it."""

    def __init__(self, ctx: Context):
        self.ctx = ctx
        self.menu = ctx.menu
        self.export_dir = Path(tempfile.mkdtemp(prefix="bfn-studio-"))
        atexit.register(shutil.rmtree, self.export_dir, ignore_errors=True)  # for whoever forgets to close the context
        ctx.on_forget(lambda sid: shutil.rmtree(self.export_dir / _folder_name(sid), ignore_errors=True))
        ctx.on_close(lambda: shutil.rmtree(self.export_dir, ignore_errors=True))

    def outputs(self, views: Views, fields: Sequence[str] = SHOWN) -> list:
        return views.outputs(self.menu.names, fields)

    # ------------------------------------------------------------------------------------------ views
    def _status(self, run: Run, step: int, note: str = "") -> str:
        n = run.num_steps
        t = shared_time(run.frames, step)
        parts = [f"step {max(step, 0)} of {n}" + ("" if t is None else f" (t = {t:.3f})")]
        for name, frames in run.frames.items():
            said = [] if t is not None else [f"t = {float(frames.t[clamp(step, frames)]):.3f}"]
            if frames.precision is not None and step >= 0:  # θ holds a precision: say how sure it is
                rho = float(frames.precision[step].mean())
                said.append(f"ρ = {rho:.3g}, σ = {1 / math.sqrt(rho):.3g}")
            if said:
                parts.append(f"{name} " + ", ".join(said))
        parts.append(f"{max(run.latest, 0)} of {plural(n, 'step')} sampled" if run.running else ran_for(run))
        if note:
            parts.append(note)
        return status(run, " · ".join(parts), run.settings.describe())

    def _pixel_views(self, session: Session, run: Run, step: int) -> Views:
        """The figures of `run` that follow the session's chosen pixels and the image chosen last.

        Every view takes the run it shows from its caller, never from the session again: while a stream draws
        its last update, the store may drop that ended run from the session (another session's run needed the
        memory), and the stream still has its frames to finish with.
        """
        return Views(
            heatmap=plot(pixel_heatmap(run.frames, step, session.image, session.pixels, run.settings.labels)),
            trajectories=plot(figures.trajectories(run.frames, step, session.pixels)),
            beliefs=plot(figures.digit_beliefs(run.frames, step, session.image, run.settings.labels)),
        )

    def _views(self, session: Session, run: Run, step: int, *, plots: bool = True, slider: bool = True, note: str = "") -> Views:
        """Every view of `run` at `step`; the figures only if `plots`, the slider only if `slider` (else left as
        they are)."""
        views = self._pixel_views(session, run, step) if plots else Views()
        views.status = self._status(run, step, note)
        views.images = {name: (None, None) for name in self.menu.names}  # clears the models not in the run
        for name, fr in run.frames.items():
            views.images[name] = (images.theta_image(fr, step), images.output_image(fr, step))
        if slider:
            views.slider = gr.Slider(value=step, maximum=run.num_steps)
        if plots:
            views.summary = plot(figures.step_summary(run.frames, step))
        return views

    # --------------------------------------------------------------------------------------- handlers
    def generate(
        self, model: Any, digits: Any, digit: Any, guidance: Any, steps: Any, seed: Any, sampler: Any, autoguidance: Any,
        request: gr.Request,
    ) -> Iterator[list]:
        """Sample digits and stream the views while it runs; the last update is the final state."""
        try:
            settings = parse_settings(model, digits, digit, guidance, steps, seed, sampler, autoguidance, menu=self.menu)
        except ValueError as e:
            raise invalid(e) from None
        try:
            run = self.ctx.store.start_run(session_id(request), settings, self.ctx.bank.models, self.ctx.bank.classifier)
        except RunTooLarge as e:
            raise invalid(e) from None
        session = self.ctx.session(request)
        columns: Any = {name: gr.Column(visible=name in run.frames) for name in self.menu.names}

        def draw(plots: bool, rate: float | None) -> list:
            nonlocal columns
            if run.dismissed:  # another model was chosen: the page cleared this run's views
                return self.outputs(Views(), GENERATED)
            if run.follow_live:
                session.step = run.latest
                views = self._views(session, run, run.latest, plots=plots, note=f"views refreshed {rate:.1f} times/s" if rate else "")
            else:
                views = Views(status=self._status(run, run.latest, note=f"viewing step {session.step} — drag to the end to follow"))
            views.columns, columns = columns, UNSET  # sent once, with the first update
            return self.outputs(views, GENERATED)

        def unstarted() -> list:
            if run.dismissed:
                return self.outputs(Views(), GENERATED)
            return self.outputs(Views(status=_nothing_sampled(run), columns=columns), GENERATED)

        yield from self.ctx.stream([run], draw, unstarted)

    def switch_model(self, model: Any, request: gr.Request) -> list:
        """Another model was chosen: its recommended guidance, and views that no longer show the last run.

        The last run is of the models chosen before: its status, images and figures would describe what is no
        longer chosen, and a scrub or a click would bring them back. So it is stopped and forgotten (its stream
        then sends nothing more), and the views are cleared. A run of the model just chosen is left alone: the
        user pressed Generate right after choosing, and the server took that run up before this switch.
        → the `SHOWN` views, then the guidance.
        """
        model = parsed(parse_choice, "model", model, tuple(self.menu.choices))  # the raw value: any caller's
        guidance = self.menu.recommended_for(model).guidance
        if self.ctx.store.end(session_id(request), GENERATION, keep=lambda run: run.settings.model == model):
            return self.outputs(Views()) + [gr.skip()]  # its guidance is the one it runs with
        self.ctx.session(request).step = 0
        views = Views(status=f"{self.menu.choices[model]}, at {self._whose_guidance(model, guidance)}: press **Generate**.",
                      images={name: (None, None) for name in self.menu.names}, slider=gr.Slider(value=0),
                      heatmap=None, trajectories=None, summary=None, beliefs=None)  # fmt: skip
        return self.outputs(views) + [guidance]

    def _whose_guidance(self, choice: str, guidance: float) -> str:
        """ "its recommended guidance 1.8", or side by side, where one weight drives every model, whose it is and
        what the others recommend: "Binarised (discrete)'s recommended guidance 1.8 (Continuous's: 1.55)"."""
        first, *others = self.menu.models(choice)
        differ = {self.menu.titles[name]: g for name in others if (g := self.menu.recommended_for(name).guidance) != guidance}
        if not differ:
            return f"its recommended guidance {guidance:g}"
        theirs = ", ".join(f"{title}'s: {g:g}" for title, g in differ.items())
        return f"{self.menu.titles[first]}'s recommended guidance {guidance:g} ({theirs})"

    def stop(self, request: gr.Request) -> list:
        """Stop this session's run (and any playback) and show its last recorded step."""
        session = self.ctx.session(request)
        run = session.run
        if run is None:
            return self.outputs(Views(status="Nothing is running."))
        run.stop(wait=2.0)
        run.follow_live = True
        if run.latest < 0:
            return self.outputs(Views(status=_nothing_sampled(run)))
        session.step = run.latest
        return self.outputs(self._views(session, run, run.latest))

    def scrub(self, step: Any, request: gr.Request) -> list:
        """Show every view at `step` (clamped to the steps recorded so far)."""
        step = parsed(parse_int, "step", step, 0, MAX_APP_STEPS)
        session = self.ctx.session(request)
        run = session.run
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
        session = self.ctx.session(request)
        run = session.run
        if run is None or run.latest < 0:
            raise gr.Error("Nothing to play yet: press Generate first.", title="No run")
        run.follow_live = False
        end = run.latest
        start = session.step if session.step < end else 0
        stride = max(1, math.ceil((end - start) / (PLAY_SECONDS * PLAY_FPS)))
        steps = list(range(start, end, stride)) + [end]
        next_at = time.monotonic()
        for k, step in enumerate(steps):
            if run.dismissed:  # another model was chosen: its cleared views stay
                return
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
        """Follow (or stop following) pixel (row, col) of image `image` (kept for the session's runs to come)."""
        session = self.ctx.session(request, create=True)
        run = session.run
        batch = len(run.settings.labels) if run is not None else self.menu.num_labels
        height, width = (run.settings.label_set if run is not None else self.menu.label_set(self.menu.names[0])).shape
        try:
            pixel = (parse_int("image", image, 0, batch - 1), parse_int("row", row, 0, height - 1),
                     parse_int("col", col, 0, width - 1))
        except ValueError as e:
            raise invalid(e) from None
        session.add_pixel(pixel)
        return self._follow(session)

    def click_pixel(self, click: Any, request: gr.Request) -> list:
        """A click on any of the images, as "x,y" in image pixels (sent by the page's click script): follow that
        pixel. → the `PIXEL` views, then the pixel's image, row and column, for the boxes that name a pixel."""
        session = self.ctx.session(request)
        run = session.run
        unchanged = self.outputs(Views(), PIXEL) + [gr.skip()] * 3
        if run is None:
            return unchanged
        layout = images.GridLayout(len(run.settings.labels), run.settings.label_set.shape)
        try:
            x, y = parse_click(click, layout.width, layout.height)
        except ValueError as e:
            raise invalid(e) from None
        pixel = layout.locate(x, y)
        if pixel is None:  # on the padding between images
            return unchanged
        session.add_pixel(pixel)
        return self._follow(session) + list(pixel)

    def clear_pixels(self, request: gr.Request) -> list:
        """Follow no pixel (kept for the session's runs to come: the page starts by following one)."""
        session = self.ctx.session(request, create=True)
        session.pixels.clear()
        return self._follow(session)

    def _export_path(self, run: Run, request: gr.Request | None, suffix: str) -> Path:
        """Where the session's export of `run` as a .`suffix` file goes: named by the run's settings."""
        s = run.settings
        return self.export_dir / _folder_name(session_id(request)) / f"bfn-{s.model}-{s.digits}-w{s.guidance:g}-n{s.steps}-seed{s.seed}.{suffix}"

    def _export(self, request: gr.Request | None, suffix: str, make: Callable[[Mapping[str, Frames]], bytes]) -> str:
        """Write `make(run.frames)` (the bytes of a file) for this session's run and return the file's path.

        Written under a temporary name and renamed into place: a second export of the same run (a double click)
        never rewrites the file while the first one's response is copied or read from it."""
        run = self.ctx.session(request).run
        if run is None or run.latest < 0:
            raise gr.Error("Nothing to export yet: press Generate first.", title="No run")
        path = self._export_path(run, request, suffix)
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, make(run.frames))
        return str(path)

    def preview_of(self, suffix: str) -> Callable[[gr.Request], str | None]:
        """The event that shows the session's last export of its run as a .`suffix` file (None if there is none),
        read on the server, not named by the caller. A closure, not a `functools.partial`: Gradio finds the request
        parameter it fills by the function's type hints, which a partial does not carry (the preview then failed)."""
        def preview(request: gr.Request) -> str | None:
            run = self.ctx.session(request).run
            path = None if run is None else self._export_path(run, request, suffix)
            return str(path) if path is not None and path.is_file() else None

        return preview

    def export_gif(self, request: gr.Request) -> str:
        """The run (up to its last recorded step) as an animated GIF."""
        return self._export(request, "gif", exports.animation_gif)

    def export_png(self, request: gr.Request) -> str:
        """The generated digits (for a stopped run: its last output distribution) as a PNG grid."""
        return self._export(request, "png", lambda frames: exports.png_bytes(exports.final_picture(frames)))
