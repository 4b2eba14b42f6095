"""The run's config: the book's recipe as one dataclass, its presets, its defaults per mode and architecture, and
the rules every caller shares (which presets a mode can take, the book's rates).

Without torch, like `ftcore.archs`: the Train page draws its settings from here before torch has loaded.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any

from .archs import get_arch
from .errors import FtcoreError

MODES = ("finetune", "scratch")
LOSS_REDUCTIONS = ("sum", "mean")
HEAD_INITS = ("xavier", "imagenet")  # how the new output layer starts: the book's Xavier, or ImageNet's rows
# How a run gives unequal classes an equal say (data.balance): not at all (the book), a class-weighted loss, or a
# class-balanced draw of every epoch's photos.
BALANCE_METHODS = ("none", "loss", "sampler")
# What each way of balancing does, for the help of the flag and of the Train page's toggle.
BALANCE_DESCRIPTIONS = {"none": "every photo once an epoch, its loss unweighted (the book's)",
                        "loss": "each photo's loss weighted by the inverse of its class's share",
                        "sampler": "every epoch drawn with the classes in equal shares"}
BALANCE_WHEN_ASKED = "loss"  # what "balance the classes" means where no method is named: the one that won (docs)
# "auto" is bf16 where the hardware runs it natively (CUDA GPUs with bf16, CPUs with AVX512-BF16 or AMX),
# else fp32. The book trains in fp32; pass fp32 to match its arithmetic exactly.
PRECISIONS = ("auto", "fp32", "bf16")
FROZEN_BATCHNORM = ("eval", "train")  # frozen copied layers' BatchNorm: ImageNet's statistics kept, or moving
# The largest learning rate a running run takes when steered: the learning-rate finder's highest end. With the
# book's summed loss a rate of even 1 diverges at once; a larger one is a typing slip, and the run refuses it.
MAX_STEER_LR = 10.0
CHECK_ARCH = "mobilenet_v2"  # the network the photo check embeds with unless told: the quickest built-in one
CPU_DEVICES = ("auto", "cpu")  # the devices every machine offers; devices.placement.available_devices adds its GPUs

# What the book printed (ResNet-18 on d2l's hotdog.zip, 5 epochs, batch 128, two GPUs).
BOOK_RESULTS = {
    "finetune": {"train_loss": 0.220, "train_acc": 0.915, "test_acc": 0.939, "examples_per_sec": 999.1},
    "scratch": {"train_loss": 0.374, "train_acc": 0.839, "test_acc": 0.843, "examples_per_sec": 1623.8},
}
BOOK_SETUP = "ResNet-18 on d2l's hotdog.zip, 5 epochs, batch 128, 2 GPUs"


def check_val_fraction(val_fraction: float | None) -> None:
    """Refuse a held-out share outside [0, 1)."""
    if val_fraction is not None and not 0 <= val_fraction < 1:
        raise FtcoreError(f"the validation share must be at least 0 and below 1 (got {val_fraction}); "
                          "e.g. 0.2 holds out a fifth of each class")


def knob(default: object, text: str) -> Any:
    """A TrainConfig field: its default (MISSING: none) and the sentence the CLI's --help shows for it."""
    return field(default=default, metadata={"help": text})


@dataclass
class TrainConfig:
    """Everything that defines a run. `recipe()` fills in the book's defaults for a mode and architecture."""

    data: str = knob(MISSING, "dataset folder in any layout (splits.LAYOUTS): the book's train/ + test/, train/ + val/ "
                     "[+ test/], train/ alone, or a folder of class folders")
    val_fraction: float | None = knob(None, "share of each class held out of train for validation (default: 0.2 "
                                      "where the data has no test/ or val/, none for train/ + test/, where giving "
                                      "one makes every per-epoch figure use val and test count once)")
    split_seed: int = knob(0, "seed of the held-out split (a hash of seed and path, so stable as photos are added)")
    edits: str | None = knob(None, "the photo edits to train with (relabels and exclusions), a file frozen from the "
                             "dataset's edit log; None trains on the folder as it is")
    mode: str = knob("finetune", "finetune: ImageNet weights and a new output layer; scratch: all weights random")
    arch: str = knob("resnet18", "architecture: a built-in one or any classification network "
                         "torchvision lists, by name (book: resnet18)")
    lr: float = knob(5e-5, "learning rate of every layer but the new output layer (default: per architecture and "
                     "mode; the book: 5e-5 fine-tune, 5e-4 scratch)")
    param_groups: bool = knob(True, "output layer at head_lr_mult x lr (book: on for fine-tune, off for scratch)")
    head_lr_mult: float = knob(10.0, "the book's 10x for the freshly initialised output layer")
    epochs: int = knob(5, "epochs of every trainable layer (book: 5)")
    head_epochs: int = knob(0, "before those, epochs of the new output layer alone on features of the frozen "
                            "copied layers, computed once per photo (book: 0; the quick and best presets use them; "
                            "fine-tune only)")
    head_views: int = knob(0, "for those epochs, also this many augmented views of each training photo through the "
                           "frozen layers (best preset: 2; fine-tune only)")
    head_lr_decay: bool = knob(False, "output-layer epochs lower the lr linearly to 0 (steadier last epochs)")
    batch_size: int = knob(128, "images per SGD step (book: 128)")
    loss_reduction: str = knob("sum", "backprop the sum of per-example losses (book) or their mean (good lrs are "
                               "then about batch-size times larger)")
    weight_decay: float = knob(1e-3, "SGD weight decay on every parameter; SGD has no momentum (book: 0.001)")
    image_size: int = knob(224, "train crop and test centre crop; the test resize is 256/224 of it, or the "
                          "network's weights' own ratio (book: 224)")
    limit: int | None = knob(None, "keep at most this many images per class and split (quick runs)")
    device: str = knob("auto", "auto (all CUDA GPUs, else MPS, else CPU), cpu, cuda, cuda:N or mps")
    precision: str = knob("auto", "auto: bf16 autocast where the device has native bf16 (AVX512-BF16/AMX CPUs, "
                          "recent GPUs) and the architecture keeps its accuracy in it, else fp32 (book: fp32)")
    decode_once: bool = knob(True, "decode each photo once per run and augment in memory (the book decodes every "
                             "epoch); falls back to streaming from disk when the photos would not fit")
    micro_batch: int = knob(0, "images per forward/backward within a step: the same summed gradient, but it "
                            "changes BatchNorm's batch to these images (0 = auto: the whole batch, the book's "
                            "BatchNorm, wherever its memory fits, else the largest micro-batch that fits)")
    num_workers: int = knob(0, "DataLoader worker processes (0 = load in the training thread)")
    seed: int = knob(0, "seeds model init, shuffling and augmentation: same seed, same run on a CPU")
    weights: str | None = knob(None, "ImageNet weights file (default: $FTCORE_WEIGHTS, torchvision's cache, the "
                               "shared folder, then the download)")
    freeze_body: bool = knob(False, "book exercise: freeze the copied layers (requires_grad=False) and train only "
                             "the new output layer (fine-tune only)")
    frozen_batchnorm: str = knob("eval", "BatchNorm of the copied layers while they are frozen (from the start, or "
                                 "steered to 0): eval keeps ImageNet's statistics, as fastai's train_bn=False; train "
                                 "lets them follow the photos, as PyTorch's train mode does")
    head_init: str = knob("xavier", "how the new output layer starts: xavier (book) or imagenet, from the ImageNet "
                          "output rows named like the classes (fine-tune only)")
    balance: str = knob("none", "give every class an equal say in training: " + "; ".join(
        f"{method}: {words}" for method, words in BALANCE_DESCRIPTIONS.items()))

    def validate(self) -> None:
        """Raise FtcoreError naming the first field a user set to something unusable."""
        spec = get_arch(self.arch)
        checks = [
            (self.mode in MODES, f"mode must be finetune or scratch (got {self.mode!r})"),
            (self.loss_reduction in LOSS_REDUCTIONS,
             f"loss reduction must be sum or mean (got {self.loss_reduction!r})"),
            (self.head_init in HEAD_INITS, f"head init must be xavier or imagenet (got {self.head_init!r})"),
            (not (self.head_init == "imagenet" and self.mode != "finetune"),
             "the ImageNet head init needs ImageNet weights; use it with fine-tuning, not scratch"),
            (not (self.head_epochs and self.mode != "finetune"),
             "output-layer epochs train on features of the copied layers; use them with fine-tuning, not scratch"),
            (not (self.freeze_body and self.mode != "finetune"),
             "freezing the copied layers needs copied layers; use it with fine-tuning, not scratch"),
            (self.precision in PRECISIONS, f"precision must be auto, fp32 or bf16 (got {self.precision!r})"),
            (self.balance in BALANCE_METHODS, f"class balance must be none, loss or sampler (got {self.balance!r})"),
            (self.frozen_batchnorm in FROZEN_BATCHNORM,
             f"frozen BatchNorm must be eval or train (got {self.frozen_batchnorm!r})"),
            (self.lr > 0, f"learning rate must be positive (got {self.lr})"),
            (self.head_lr_mult > 0, f"output-layer lr multiplier must be positive (got {self.head_lr_mult})"),
            (self.weight_decay >= 0, f"weight decay must be 0 or more (got {self.weight_decay})"),
            (self.epochs >= 0 and self.head_epochs >= 0,
             f"epochs must be 0 or more (got {self.epochs} and {self.head_epochs} output-layer epochs)"),
            (self.epochs + self.head_epochs >= 1,
             f"epochs must add up to at least 1 (got {self.epochs} full and {self.head_epochs} output-layer)"),
            (self.batch_size >= 1, f"batch size must be at least 1 (got {self.batch_size})"),
            (self.head_views >= 0, f"augmented views must be 0 or more (got {self.head_views})"),
            (self.micro_batch >= 0, f"micro-batch must be 0 (auto) or more (got {self.micro_batch})"),
            (self.num_workers >= 0, f"workers must be 0 or more (got {self.num_workers})"),
            (self.image_size >= 32, f"image size must be at least 32 pixels (got {self.image_size})"),
            (self.limit is None or self.limit >= 1, f"limit must be at least 1 image per class (got {self.limit})"),
            (self.image_size < 32 or spec.size_problem(self.image_size) is None,
             spec.size_problem(self.image_size) or ""),
            (not (self.head_epochs and spec.head_kind != "linear"),
             f"{self.arch}'s output layer is a convolution before the pooling, which output-layer epochs on cached "
             "features cannot train; train every layer (the book's or the lesson's recipe)"),
        ]
        for ok, message in checks:
            if not ok:
                raise FtcoreError(message)
        check_val_fraction(self.val_fraction)

    @staticmethod
    def help(name: str) -> str:
        """The help sentence of field `name`."""
        return TrainConfig.__dataclass_fields__[name].metadata["help"]

    @staticmethod
    def default(name: str) -> Any:
        """The default of field `name`."""
        return TrainConfig.__dataclass_fields__[name].default

    @property
    def head_lr(self) -> float:
        """The new output layer's lr: head_lr_mult x lr with parameter groups, else lr (every layer alike)."""
        return self.lr * self.head_lr_mult if self.param_groups else self.lr

    @property
    def total_epochs(self) -> int:
        """Output-layer epochs plus full epochs: the length of the run's x axis."""
        return self.head_epochs + self.epochs

    def to_dict(self) -> dict:
        """Plain dict (JSON- and weights_only-safe)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TrainConfig:
        """Rebuild a config, ignoring keys this version does not know."""
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


# Named starting points on top of the book's recipe; each sets only the fields it names. Their time to
# accuracy against the book's loop is in docs/benchmarks.md, "Speed". "lesson" is the book's comparison scaled
# down to answer within a minute or two on a laptop CPU, at the book's rates (docs/benchmarks.md, "The lesson in
# a minute"); its architecture is the one used where none is named.
PRESETS: dict[str, dict] = {
    "book": {},
    "quick": {"head_epochs": 20, "epochs": 0},
    "best": {"head_epochs": 20, "epochs": 0, "head_views": 2, "head_lr_decay": True},
    "lesson": {"arch": "mobilenet_v2", "image_size": 96, "limit": 500, "epochs": 2, "batch_size": 32},
}
PRESETS["steer"] = {**PRESETS["lesson"], "epochs": 10}  # the lesson's fine-tuning, long enough to steer


PRESET_DESCRIPTIONS = {
    "book": "the book's recipe: 5 epochs of every layer, copied layers at lr, output layer at 10x",
    "quick": "frozen copied layers run once per photo, then 20 epochs of the output layer alone (fine-tune only)",
    "best": "like quick, plus 2 augmented views of every training photo through the frozen layers, and the "
            "output layer's lr decayed to 0 (fine-tune only)",
    "lesson": "the book's recipe and rates scaled down to answer in about a minute on a laptop CPU: {arch}, "
              "{image_size} px, {limit} training photos per class, batch {batch_size}, {epochs} epochs "
              "(fine-tune and scratch)".format(**PRESETS["lesson"]),
    "steer": "the lesson's settings for {epochs} epochs, a run long enough to steer while it trains: its learning "
             "rate, the output layer's 10x and freezing change from one batch to the next".format(**PRESETS["steer"]),
}


# Presets that train every layer of both modes, so `compare` runs its scratch side with them too.
ALL_MODE_PRESETS = ("book", "lesson", "steer")


def lr_text(lr: float) -> str:
    """A learning rate as people write it: 5e-05 for round values, 1.5e-04 otherwise."""
    return f"{lr:.0e}" if float(f"{lr:.0e}") == lr else f"{lr:.1e}"


def lr_words(lr: float) -> str:
    """A learning rate as the book writes it in its prose: 5e-5, 6.4e-3."""
    return lr_text(lr).replace("e-0", "e-")


def recipe(mode: str = "finetune", arch: str | None = None, preset: str = "book", **overrides) -> TrainConfig:
    """The book's recipe for `mode` (its lr, the arch's own off ResNet-18, and param groups), then `preset`'s
    fields, then `overrides` (None values ignored). No `arch`: the preset's, else ResNet-18 (the book's)."""
    if preset not in PRESETS:
        raise FtcoreError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    preset_fields = {name: value for name, value in PRESETS[preset].items() if name != "arch"}
    arch = arch or PRESETS[preset].get("arch") or TrainConfig.default("arch")
    arch = get_arch(arch).name  # an unknown architecture is named before the mode; "ResNet18" is resnet18
    if mode not in MODES:
        raise FtcoreError(f"mode must be finetune or scratch (got {mode!r})")
    defaults = {"lr": default_lr(mode, arch), "param_groups": mode == "finetune", **preset_fields}
    defaults.update({k: v for k, v in overrides.items() if v is not None})
    return TrainConfig(mode=mode, arch=arch, **defaults)


def presets_for(mode: str) -> tuple[str, ...]:
    """The presets a run of `mode` can train with: every one when fine-tuning; from scratch only those that train
    every layer, since the others train the output layer on features of copied layers, which scratch has none of."""
    return tuple(PRESETS) if mode == "finetune" else ALL_MODE_PRESETS


def preset_for(mode: str, preset: str) -> str:
    """`preset` where a run of `mode` can take it, else the book's: what the Train page and `compare`'s scratch side
    train with."""
    return preset if preset in presets_for(mode) else "book"


# What only fine-tuning can train: the fields about copied layers, which a run from scratch has none of.
FINETUNE_ONLY = ("head_epochs", "head_views", "freeze_body", "head_init")


def allows(mode: str, field: str) -> bool:
    """True where a run of `mode` can set `field` (a TrainConfig field): from scratch, none of FINETUNE_ONLY."""
    return mode == "finetune" or field not in FINETUNE_ONLY


def recipe_note(mode: str, preset: str) -> str:
    """What a run of `mode` on `preset` trains, in one sentence, from the recipe itself: where the mode cannot take
    the preset, which one it trains with instead."""
    chosen = preset_for(mode, preset)
    if chosen != preset:
        return (f"The {preset} recipe trains the output layer on features of copied ImageNet layers, so it is for "
                f"fine-tuning; from scratch trains with {recipe_words(chosen)} recipe.")
    if mode != "finetune":
        run = recipe(mode, None, chosen, data="")
        groups = f"the output layer at {run.head_lr_mult:g}x" if run.param_groups else "all at one lr"
        words = recipe_words(chosen)
        return f"{words[0].upper()}{words[1:]} recipe from scratch: {run.epochs} epochs of every layer, {groups}."
    return PRESET_DESCRIPTIONS[chosen][0].upper() + PRESET_DESCRIPTIONS[chosen][1:] + "."


def frozen_batchnorm_words(frozen_batchnorm: str) -> str:
    """What freezing the copied layers keeps of them, with `frozen_batchnorm` (FROZEN_BATCHNORM), in words."""
    if frozen_batchnorm == "eval":
        return "the copied layers stay as they are (as ImageNet left them, when frozen from the start), BatchNorm " \
               "statistics included"
    return "the copied layers' weights stay as they are, while their BatchNorm statistics follow these photos"


def recipe_words(preset: str) -> str:
    """"the book's" or "the quick": how a sentence names a preset's recipe."""
    return "the book's" if preset == "book" else f"the {preset}"


def default_lr(mode: str, arch: str) -> float:
    """The default learning rate of the copied layers for `mode` and `arch`, with the summed loss (archs' registry)."""
    spec = get_arch(arch)
    return spec.finetune_lr if mode == "finetune" else spec.scratch_lr


def book_lr(mode: str = "finetune") -> float:
    """The book's learning rate for `mode`, with its summed loss: its ResNet-18's (5e-5 fine-tuning, 5e-4 from
    scratch)."""
    return default_lr(mode, TrainConfig.default("arch"))


def mean_loss_lr(lr: float, batch_size: int) -> float:
    """The rate that takes with the mean loss the steps `lr` takes with the book's sum: batch-size times larger, since
    the mean's gradient is the sum's divided by the batch size."""
    return lr * batch_size
