"""The commands on a trained model: `predict` (photos), `evaluate` (per-class metrics, confusion matrix, worst
photos) and `export` (TorchScript or ONNX)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..data.dataset import SPLITS
from ..data.download import find_data
from ..data.images import open_image
from ..devices.placement import resolve_devices
from ..errors import FtcoreError
from ..insight import export
from ..insight.evaluation import evaluate_photos, format_evaluation
from ..insight.predict import format_prediction, rank_classes
from ..models.checkpoint import load_checkpoint
from .args import add_split_arguments

PREDICT_BATCH = 32  # photos per forward pass in `predict`


def add_predict(sub: argparse._SubParsersAction) -> None:
    """`predict`: classify photos with a checkpoint."""
    predict = sub.add_parser("predict", help="classify photos with a saved checkpoint")
    predict.add_argument("--checkpoint", required=True, metavar="FILE", help="checkpoint.pt from a training run")
    predict.add_argument("images", nargs="+", metavar="IMAGE", help="photos to classify")
    predict.add_argument("--json", action="store_true", help="print JSON instead of lines")
    predict.set_defaults(run=cmd_predict)


def add_evaluate(sub: argparse._SubParsersAction) -> None:
    """`evaluate`: a checkpoint on held-out photos."""
    evaluate = sub.add_parser("evaluate", help="per-class metrics, confusion matrix and worst photos of a checkpoint")
    evaluate.add_argument("--checkpoint", required=True, metavar="FILE", help="checkpoint.pt from a training run")
    evaluate.add_argument("--data", metavar="DIR", help="dataset folder (default: the run's own data, with the "
                          "run's held-out split, else the hot-dog set)")
    evaluate.add_argument("--split", choices=SPLITS, default=None, help="which split to evaluate (default: test, "
                          "else val)")
    evaluate.add_argument("--limit", type=int, metavar="N", help="at most N photos per class")
    add_split_arguments(evaluate)
    evaluate.add_argument("--top", type=int, default=8, metavar="K", help="worst photos to list (default 8)")
    evaluate.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N, mps")
    evaluate.add_argument("--json", action="store_true", help="print JSON instead of tables")
    evaluate.set_defaults(run=cmd_evaluate)


def add_export(sub: argparse._SubParsersAction) -> None:
    """`export`: a checkpoint's model as TorchScript or ONNX."""
    export_cmd = sub.add_parser("export", help="export a checkpoint's model as TorchScript or ONNX")
    export_cmd.add_argument("--checkpoint", required=True, metavar="FILE", help="checkpoint.pt from a training run")
    export_cmd.add_argument("--format", choices=export.FORMATS, default="torchscript",
                            help="torchscript (default) or onnx (needs the onnx package)")
    export_cmd.add_argument("--out", metavar="FILE", help="where to write it (default: model.pt / model.onnx beside "
                            "the checkpoint)")
    export_cmd.set_defaults(run=cmd_export)


def cmd_predict(args: argparse.Namespace) -> int:
    """`predict`: `IMAGE: class p, class p` per photo, or JSON."""
    trained = load_checkpoint(args.checkpoint)
    images = [open_image(path) for path in args.images]  # every photo is checked before any output
    ranked = [pairs for start in range(0, len(images), PREDICT_BATCH)
              for pairs in rank_classes(trained, images[start:start + PREDICT_BATCH])]
    if args.json:
        print(json.dumps([{"image": name, "probabilities": dict(pairs), "prediction": pairs[0][0]}
                          for name, pairs in zip(args.images, ranked, strict=True)], indent=2))
    else:
        for name, pairs in zip(args.images, ranked, strict=True):
            print(format_prediction(name, pairs))
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    """`evaluate`: per-class table, accuracy, confusion matrix and the worst photos (or JSON)."""
    trained = load_checkpoint(args.checkpoint)
    data = args.data or (trained.config.data if Path(trained.config.data).is_dir() else find_data())
    if data is None:
        raise FtcoreError("no data given and the run's own data folder is gone; pass --data DIR")
    if args.top < 0:
        raise FtcoreError(f"--top must be 0 or more (got {args.top})")
    model = trained.model.to(resolve_devices(args.device)[0])
    val_fraction, split_seed = args.val_fraction, args.split_seed
    if val_fraction is None and Path(data).expanduser().resolve() == Path(trained.config.data).resolve():
        val_fraction, split_seed = trained.config.val_fraction, trained.config.split_seed  # the run's split
    evaluation = evaluate_photos(model, trained.classes, trained.eval_transform, str(data), args.split,
                                 args.limit, trained.arch, val_fraction=val_fraction, split_seed=split_seed)
    if args.json:
        print(json.dumps({"checkpoint": args.checkpoint, "data": str(data),
                          **evaluation.to_dict(args.top)}, indent=2))
    else:
        print(format_evaluation(evaluation, args.top))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """`export`: TorchScript or ONNX, and what input it expects."""
    trained = load_checkpoint(args.checkpoint)
    out = args.out or Path(args.checkpoint).expanduser().parent / f"model{export.SUFFIXES[args.format]}"
    path = export.save_export(trained.model, trained.eval_transform, trained.classes, trained.arch,
                       args.format, out)
    print(f"wrote {path} ({args.format})")
    print(export.input_note(trained.eval_transform, trained.classes))
    return 0
