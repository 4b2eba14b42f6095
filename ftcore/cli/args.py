"""The flags the commands share, each a TrainConfig field with its default and help from the config, and the
config a command builds from them (the book's recipe for a mode, the preset and the user's flags on top)."""

from __future__ import annotations

import argparse

from ..archs import ARCHITECTURES
from ..config import (
    BALANCE_METHODS,
    BALANCE_WHEN_ASKED,
    HEAD_INITS,
    LOSS_REDUCTIONS,
    PRECISIONS,
    PRESET_DESCRIPTIONS,
    PRESETS,
    TrainConfig,
    preset_for,
    recipe,
)
from ..data.dataset import check_image_folder
from ..data.download import find_data
from ..data.edits import edits_for_run
from ..devices import distributed
from ..errors import FtcoreError
from ..models.output_layer import head_init_status
from ..models.weights import locate_weights


class Parser(argparse.ArgumentParser):
    """argparse whose usage errors are one `error: ...` line with exit status 2, like every other error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print one line and exit 2."""
        self.exit(2, f"error: {message} (see `{self.prog} --help`)\n")


def lr_epilog() -> str:
    """The per-architecture default learning rates, and whose they are."""
    lines = ["default learning rates (summed loss; fine-tune lr / scratch lr):"]
    for spec in ARCHITECTURES.values():
        lines.append(f"  {spec.name:13s} {spec.finetune_lr:g} / {spec.scratch_lr:g}  ({spec.lr_source})")
    lines.append("  any other classification network torchvision lists (efficientnet_b0, convnext_tiny, vit_b_16, "
                 "...): the book's resnet18 rates, carried over")
    lines.append("book defaults: batch 128, 5 epochs, SGD weight decay 0.001, summed loss, param groups on for "
                 "fine-tune (output layer at 10x lr) and off for scratch.")
    return "\n".join(lines)


def flag(p: argparse.ArgumentParser, name: str, field_name: str | None = None, shown: str | None = None,
         **kwargs) -> None:
    """Add --name for TrainConfig's field (its default and help come from the config; `shown` says the default
    where the config's words do not), with argparse extras."""
    field_name = field_name or name.removeprefix("--").replace("-", "_")
    text = TrainConfig.help(field_name)
    kwargs.setdefault("default", TrainConfig.default(field_name))
    p.add_argument(name, help=f"{text} {shown or default_words(text, field_name, kwargs['default'])}".rstrip(),
                   **kwargs)


def default_words(text: str, field_name: str, default: object) -> str:
    """"(default: 5)" for a flag's help, or nothing where the config's sentence says it already."""
    if "(default" in text or isinstance(TrainConfig.default(field_name), bool):
        return ""
    if default is None:
        return "(default: the preset's)" if TrainConfig.default(field_name) is not None else ""
    return f"(default: {default:g})" if isinstance(default, float) else f"(default: {default})"


def add_run_arguments(p: argparse.ArgumentParser) -> None:
    """Flags shared by `train`, `compare`, `sweep` and `lr-find`: TrainConfig's fields (or the preset's, where it
    sets one)."""
    p.add_argument("--data", metavar="DIR", help=TrainConfig.help("data") + " (default: the hot-dog set "
                   "`python -m ftcore data` finds)")
    add_split_arguments(p)
    p.add_argument("--as-is", action="store_true", help="train on the data folder as it is, leaving out the photo "
                   "edits of `ftcore clean` (default: the photos as edited)")
    flag(p, "--arch", default=None, metavar="NAME",
         shown=f"(default: the preset's; built in: {', '.join(ARCHITECTURES)})")
    p.add_argument("--preset", choices=list(PRESETS), default="book",
                   help="; ".join(f"{name}: {text}" for name, text in PRESET_DESCRIPTIONS.items()) + " (default: book)")
    flag(p, "--epochs", type=int, default=None)
    flag(p, "--head-epochs", type=int, default=None)
    flag(p, "--head-views", type=int, default=None)
    flag(p, "--decode-once", action=argparse.BooleanOptionalAction)
    flag(p, "--batch-size", type=int, default=None)
    flag(p, "--loss-reduction", choices=LOSS_REDUCTIONS)
    flag(p, "--weight-decay", type=float)
    flag(p, "--weights", metavar="FILE")
    flag(p, "--image-size", type=int, default=None)
    flag(p, "--limit", type=int, metavar="N")
    flag(p, "--device")
    flag(p, "--precision", choices=PRECISIONS)
    flag(p, "--micro-batch", type=int, metavar="N")
    flag(p, "--workers", "num_workers", type=int)
    flag(p, "--seed", type=int)
    flag(p, "--balance", nargs="?", const=BALANCE_WHEN_ASKED, choices=BALANCE_METHODS, default=None,
         metavar="METHOD", shown=f"(default: none; --balance alone: {BALANCE_WHEN_ASKED})")


def add_split_arguments(p: argparse.ArgumentParser) -> None:
    """--val-fraction and --split-seed: how validation photos are held out where the data has no val/."""
    flag(p, "--val-fraction", type=float, metavar="F")
    flag(p, "--split-seed", type=int, metavar="N")


def add_exercise_arguments(p: argparse.ArgumentParser) -> None:
    """The book's exercises: feature-extractor mode and the ImageNet head init (fine-tune only)."""
    flag(p, "--freeze-body", action="store_true", default=None)
    flag(p, "--head-init", choices=HEAD_INITS, default=None)


def exercise_overrides(args: argparse.Namespace, mode: str) -> dict:
    """--freeze-body/--head-init as recipe overrides; `compare` applies them to its fine-tune run only."""
    if args.command == "compare" and mode != "finetune":
        return {}
    return {"freeze_body": getattr(args, "freeze_body", None), "head_init": getattr(args, "head_init", None)}


def config_from_args(args: argparse.Namespace, mode: str, lr: float | None = None,
                     param_groups: bool | None = None) -> TrainConfig:
    """A TrainConfig: the book's recipe for `mode`, with the flags the user gave on top. The preset and the
    output-layer epochs apply to fine-tuning only (`compare` runs its scratch side with the book's recipe)."""
    data = args.data or find_data()
    if data is None:
        raise FtcoreError("no data given and no hot-dog set found; pass --data DIR or run "
                          "`python -m ftcore data --download`")
    # `train` takes the preset as given (one its mode cannot take is the config's own error); the other commands run
    # each mode with the preset where the mode can take it, else with the book's recipe (`compare`'s scratch side)
    preset = args.preset if args.command == "train" else preset_for(mode, args.preset)
    head_epochs, head_views = (args.head_epochs, args.head_views) if preset == args.preset else (None, None)
    config = recipe(mode, args.arch, preset, data=str(data), lr=lr, param_groups=param_groups,
                    epochs=args.epochs, head_epochs=head_epochs, head_views=head_views,
                    decode_once=args.decode_once,
                    batch_size=args.batch_size, loss_reduction=args.loss_reduction, weight_decay=args.weight_decay,
                    image_size=args.image_size, limit=args.limit, device=args.device, precision=args.precision,
                    micro_batch=args.micro_batch, num_workers=args.workers, seed=args.seed, weights=args.weights,
                    val_fraction=args.val_fraction, split_seed=args.split_seed, balance=args.balance,
                    edits=None if args.as_is else edits_for_run(data), **exercise_overrides(args, mode))
    if (head_views or 0) > 0 and mode != "finetune":  # a negative count is the config's own error
        raise FtcoreError("--head-views applies to fine-tuning only; drop it or use --mode finetune")
    if (head_views or 0) > 0 and not config.head_epochs:
        raise FtcoreError("--head-views adds photos to the output-layer epochs, and this run has none; give "
                          "--head-epochs N too, or pick --preset quick or best")
    return config


def refuse_under_torchrun(command: str,
                          why: str = "runs several trainings one after another") -> None:
    """`compare`, `sweep` and `lr-find` are one-process commands; under torchrun only `train` is supported."""
    if distributed.launched_by_torchrun():
        raise FtcoreError(f"`{command}` {why} and is not supported under torchrun; run it as `python -m ftcore`, "
                          "or use torchrun with `train`")


def preflight(config: TrainConfig) -> None:
    """Catch the common mistakes (bad values, data folder, missing weights file) before anything is written."""
    config.validate()
    classes = check_image_folder(config.data, config.val_fraction, config.split_seed)
    if config.mode == "finetune":
        locate_weights(config.arch, config.weights)
    if config.head_init == "imagenet" and locate_weights(config.arch, config.weights) is not None:
        usable, sentence = head_init_status(config.arch, config.weights, classes)
        if not usable:
            raise FtcoreError(f"the new output layer cannot start from ImageNet rows: {sentence}; "
                              "use --head-init xavier")
