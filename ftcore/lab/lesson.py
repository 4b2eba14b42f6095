"""The lesson in a minute: the book's comparisons at a size a laptop CPU answers while the question is fresh.

The book's recipe is 10,000 photo passes per run; on a 2-core CPU without AVX-512 that is half an hour for each
position of the learning-rate slider. The lesson keeps what the comparison is about (the book's optimiser,
summed loss and learning rates, fine-tuning's 10x output layer) and scales the rest down
(config.PRESETS["lesson"]: a smaller network, smaller and fewer photos, fewer epochs, smaller batches). Its runs
train side by side, so their curves grow together on one chart. How fast and how far apart, measured over
seeds: docs/benchmarks.md, "The lesson in a minute".
"""

from __future__ import annotations

from collections.abc import Callable

from ..config import PRESET_DESCRIPTIONS, PRESETS, TrainConfig, recipe

# A lesson's learning-rate row: the slider's rate and a decade each side of it.
LR_ROW_FACTORS = (0.1, 1.0, 10.0)
# What the runs of a lesson take from the page's settings; everything else is the lesson's. The weights file
# comes along only where it is for the lesson's architecture.
SHARED_FIELDS = ("data", "val_fraction", "split_seed", "seed", "device")


def lesson_config(base: TrainConfig, mode: str, preset: str = "lesson", **overrides) -> TrainConfig:
    """The lesson's recipe (or another preset of its size) for `mode` on `base`'s data (its split, seed, device and
    weights file)."""
    shared = {name: getattr(base, name) for name in SHARED_FIELDS}
    if base.arch == PRESETS[preset]["arch"]:
        shared["weights"] = base.weights
    config = recipe(mode, None, preset, **{**shared, **overrides})
    config.validate()
    return config


def steer_config(base: TrainConfig) -> TrainConfig:
    """A run made to be steered: the lesson's fine-tuning for longer (config.PRESETS["steer"]), on `base`'s data."""
    return lesson_config(base, "finetune", "steer")


def compare_configs(base: TrainConfig) -> list[TrainConfig]:
    """Fine-tune (ImageNet weights, output layer at 10x) against scratch (random weights, one lr), lesson-sized."""
    return [lesson_config(base, "finetune"), lesson_config(base, "scratch")]


def row_rates(lr: float) -> list[float]:
    """The rates of a lesson's row around `lr`: a decade below it, it, and a decade above it."""
    return [float(f"{lr * factor:.6g}") for factor in LR_ROW_FACTORS]


def lr_row_configs(base: TrainConfig, lr: float) -> list[TrainConfig]:
    """Three fine-tuning runs side by side, at row_rates(lr)."""
    return [lesson_config(base, "finetune", lr=rate) for rate in row_rates(lr)]


def groups_configs(base: TrainConfig, lr: float) -> list[TrainConfig]:
    """Fine-tuning at `lr` with the output layer at 10x, against the same with one lr for every layer."""
    return [lesson_config(base, "finetune", lr=lr, param_groups=True),
            lesson_config(base, "finetune", lr=lr, param_groups=False)]


def scaled_down_text() -> str:
    """One sentence saying what the lesson scales down, for the page and the command line."""
    return f"The lesson in a minute is {PRESET_DESCRIPTIONS['lesson']}."


# Each lesson (an experiment kind) and its runs, from the page's settings: the rate row and the 10x toggle take
# the slider's rate (base.lr).
LESSONS: dict[str, Callable[[TrainConfig], list[TrainConfig]]] = {
    "lesson": compare_configs,
    "lesson-lr": lambda base: lr_row_configs(base, base.lr),
    "lesson-groups": lambda base: groups_configs(base, base.lr),
}
