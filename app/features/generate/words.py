"""What the page says about the generation: the "What am I looking at?" text, the captions under its views, and
its presets. Every claim about what the views show at the default settings is measured on the shipped models
(tests/unit/test_app_truth.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.menu import BOTH, ModelMenu
from app.core.models import ModelBank
from app.core.settings import DEFAULT_SAMPLER, RECOMMENDED
from bfn.sampling import autoguidance_interval_for, guidance_interval_for
from bfn.settings import SamplingSettings

HEADER = (
    "# BFN Studio\nWatch a [Bayesian Flow Network](https://arxiv.org/abs/2308.07037) (Graves et al. 2023) "
    "write MNIST digits: every pixel starts as a pure guess and becomes certain, step by step."
)


def explanation(bank: ModelBank) -> str:
    """The "What am I looking at?" text: how a BFN generates, then what each loaded model's views hold."""
    titles = bank.menu.titles
    models = []
    for name, model in bank.models.items():
        d, (start, end) = model.flow.display, guidance_interval_for(model)
        models.append(
            f"* **{titles[name]}** — {d.explanation} Guidance above 1 acts at t = {start:g}–{end:g}."
        )
    autoguided = autoguidance_words(bank)
    return f"""
A Bayesian Flow Network does not paint a digit pixel by pixel, and it does not denoise a noisy picture either.
It keeps a *belief* about every pixel and sharpens all of them at once.

* **Input distribution θ** — the current belief about every pixel, shown as an image: grey = "no idea",
  white = "surely ink", black = "surely background". What it holds per pixel depends on the model (below).
* **Output distribution** — what the neural network, looking at θ, predicts the finished digit will be.
  Early on it is a guess from almost no evidence (each model below says what that guess looks like); θ
  moves a little towards it with every noisy observation, and the network predicts again. By the last step
  it is all but certain: the generated digit (the binarised model's PNG export is a draw of on/off pixels
  from it).
* **Guidance** — how strongly the chosen digit is enforced. 0 ignores the digit (the network's own idea of
  "some digit"), 1 is the plain conditional model, larger values exaggerate what makes a 3 look like a 3:
  cleaner digits, less variety, and eventually a cartoonish look. Guidance above 1 acts only in each model's
  interval of time (below, and the shaded band in *Which digit?*), chosen for that model by sample quality
  (README); the plain conditional model draws the rest, with fewer network passes. Compare the band with the
  ★ in *Which digit?* (the step from which the classifier's top digit stops changing and is at least 50%
  sure): where the ★ comes first,
  guidance refines a digit already chosen; where it falls inside the band, guidance helps choose it.
* **Autoguidance** — a second, deliberately weak network of the same model (its *guide*: smaller and
  trained only briefly) also predicts the digit, and the model's prediction is pushed away from the guide's
  by a weight w (1: off), so what the long training added counts for more (Karras et al. 2024). The
  binarised model's guide helps most where no digit is asked for: {autoguided}
* **Steps** — how many small observations are made. More steps: smoother digits; fewer steps: faster, and
  rougher with the paper's sampler (the few-step solvers are made for few steps). Each step costs one pass of
  the network (two where guidance acts on a digit, and one of the smaller guide where autoguidance acts).

The models here:

{chr(10).join(models)}

Click any pixel of any image to follow it in *Pixel trajectories* and the heatmap; drag the step slider to
scrub through the run; ▶ replays it.
"""


def sampler_info(menu: ModelMenu, choice: str) -> str:
    """The Sampler choice's hint for the models of `choice`: what *recommended* runs for each, from its config
    (the continuous model's solver runs at every step count; the binarised model's bfn gives way to its few-step
    sampler below a step count)."""
    own = []
    for name in menu.models(choice):
        s = menu.sampling.get(name, SamplingSettings())
        used = s.sampler if s.sampler == s.few_steps_sampler else f"{s.sampler}, {s.few_steps_sampler} below {s.few_steps_below} steps"
        own.append(f"{menu.titles[name]}: {used}" if len(menu.models(choice)) > 1 else used)
    whose = "each model's own" if len(own) > 1 else "the model's own"
    return f"recommended: {whose} ({'; '.join(own)}) · bfn: the paper's sampler · others: few-step solvers"


BELIEFS_CAPTION = (
    "<small>A small digit classifier (weights/classifier, see its model card) reads the output distribution at every "
    "step; the ★ marks the step from which it sees the final digit for good (top digit, at least 50%); the shaded "
    "band, the steps where guidance above 1 acts. The first outputs are a blurry grey average of the digit asked for "
    "(binarised) or flat grey (continuous), and the classifier, trained on sharp digits, reads them as an 8 whatever "
    "the digit: early readings say little. In an unconditional run (Digits: *Unconditional*) you watch a digit "
    "decide itself, or fail to: with no digit asked for, fewer samples end as a digit the classifier is sure of "
    "(the model cards count them). Click any image above to show that one.</small>"
)


def autoguidance_words(bank: ModelBank) -> str:
    """What *recommended* autoguidance does for each loaded model, from the weights each model's config recommends."""
    titles, said = bank.menu.titles, []
    for name, model in bank.models.items():
        if model.guide is None:
            said.append(f"{titles[name]}: no guide, so off")
            continue
        s, (start, end) = model.sampling, autoguidance_interval_for(model)
        said.append(f"{titles[name]}: w = {s.autoguidance_unconditional:g} with no digit and {s.autoguidance:g} with one, "
                    f"at t = {start:g}–{end:g}")
    return f"*{RECOMMENDED}* uses each model's own weights ({'; '.join(said)})."


EXPORT_NOTE = (
    "<small>The GIF plays the run, θ beside the output distribution, up to its last step. The PNG shows per model "
    "the last output distribution, as on screen, and under it the final sample drawn from it: binarised pixels "
    "of a sample are on or off, so that row looks jaggier than the greys on screen.</small>"
)


@dataclass(frozen=True)
class Preset:
    """An example run: clicking it fills the settings and generates at once. `model` names a shipped model
    (or BOTH); a preset whose model this server has not loaded is not offered."""

    label: str
    model: str
    digits: str
    digit: int
    guidance: float | None  # None: the models' recommended guidance
    steps: int | None  # None: the models' recommended step count
    seed: int
    sampler: str = DEFAULT_SAMPLER

    def inputs(self, menu: ModelMenu) -> list:
        """The values of the settings widgets, in their order (`build`'s `settings`); what the preset leaves open,
        its model's recommended."""
        recommended = menu.recommended_for(self.model)
        guidance = recommended.guidance if self.guidance is None else self.guidance
        steps = recommended.steps if self.steps is None else self.steps
        return [self.model, self.digits, self.digit, guidance, steps, self.seed, self.sampler, RECOMMENDED]


PRESETS = (
    Preset("Side by side: all ten digits", BOTH, "all", 0, None, None, 0),
    Preset("No guidance (w = 0)", "discrete", "all", 0, 0.0, None, 1),
    Preset("Strong guidance (w = 8)", "discrete", "all", 0, 8.0, None, 1),
    Preset("Only 10 steps", BOTH, "all", 0, None, 10, 2),
    Preset("1000 steps, one digit", "continuous", "one", 8, None, 1000, 3),
    Preset("Unconditional", BOTH, "none", 0, 1.0, None, 4),
)
