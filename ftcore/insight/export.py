"""Export: a trained model as TorchScript (always) or ONNX (where the `onnx` package is installed).

Both take a batch of N x 3 x S x S float images, preprocessed exactly as Predict does (the app's decoding, then the
run's test transform), and return N x C logits. The preprocessing and class names travel inside the file
(ftcore.json) and in `input_note`; docs/app.md shows it as a standalone onnxruntime snippet.
"""

from __future__ import annotations

import copy
import importlib.util
import io
import json
import warnings
from pathlib import Path

import torch
from torch import nn

from ..data.transforms import EvalPreset
from ..errors import FtcoreError

FORMATS = ("torchscript", "onnx")
SUFFIXES = {"torchscript": ".pt", "onnx": ".onnx"}
METADATA_FILE = "ftcore.json"  # TorchScript extra file (and ONNX metadata key) describing the input


def onnx_available() -> bool:
    """True when the `onnx` package (needed by torch.onnx's exporter) is installed."""
    return importlib.util.find_spec("onnx") is not None


def input_note(transform: EvalPreset, classes: list[str]) -> str:
    """What the exported model expects and returns, in one paragraph: Predict's preprocessing, step by step."""
    s, r = transform.image_size, transform.resize_size
    mean = ", ".join(f"{m:.3f}" for m in transform.mean)
    std = ", ".join(f"{v:.3f}" for v in transform.std)
    resample = f"with Pillow's {transform.interpolation} filter"
    if transform.resize == "square":
        resize = f"resize to {r} x {r} {resample} (aspect ratio not kept)"
        crop = f"centre-crop {s} x {s} starting {round((r - s) / 2)} px from the left and the top"
    else:
        resize = f"resize the shorter side to {r} {resample}, keeping the aspect ratio (the longer side rounded down)"
        crop = (f"centre-crop {s} x {s} starting round((width - {s}) / 2) px from the left and "
                f"round((height - {s}) / 2) px from the top of the resized photo (halves to even, as torchvision's "
                f"CenterCrop rounds)")
    return (f"Input: a float32 tensor N x 3 x {s} x {s} (RGB). Prepare each photo as Predict does: turn it upright "
            f"(EXIF orientation), lay any transparency on white, convert to RGB; {resize}; {crop}; scale pixels to "
            f"[0, 1]; normalise each channel with mean ({mean}) and std ({std}). Output: N x {len(classes)} logits for "
            f"the classes {', '.join(classes)} in that order; softmax gives probabilities.")


def metadata(transform: EvalPreset, classes: list[str], arch: str) -> dict:
    """The description stored with an export."""
    return {"arch": arch, "classes": list(classes), "input_shape": [None, 3, transform.image_size,
                                                                    transform.image_size],
            "eval_transform": transform.to_dict(), "note": input_note(transform, classes)}


def portable_copy(model: nn.Module) -> nn.Module:
    """A CPU, float32, contiguous copy in eval mode (the shared model is left as it is)."""
    clone = copy.deepcopy(model).to("cpu", dtype=torch.float32, memory_format=torch.contiguous_format)
    for p in clone.parameters():
        p.requires_grad_(False)
    return clone.eval()


def torchscript_bytes(model: nn.Module, transform: EvalPreset, classes: list[str], arch: str) -> bytes:
    """The model traced to TorchScript, with ftcore.json (classes, preprocessing) as an extra file."""
    example = torch.zeros(1, 3, transform.image_size, transform.image_size)
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # torch.jit is deprecated in favour of torch.export, but still the portable file
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(portable_copy(model), example)
        torch.jit.save(traced, buffer, _extra_files={METADATA_FILE: json.dumps(metadata(transform, classes, arch))})
    return buffer.getvalue()


def onnx_bytes(model: nn.Module, transform: EvalPreset, classes: list[str], arch: str) -> bytes:
    """The model as ONNX (dynamic batch size), with the same description in its metadata."""
    if not onnx_available():
        raise FtcoreError("ONNX export needs the onnx package; install it (pip install onnx) or export TorchScript")
    import onnx  # an optional package (the export extra): only an ONNX export needs it

    example = torch.zeros(1, 3, transform.image_size, transform.image_size)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # The TorchScript-based exporter: needs only `onnx`, and takes well under a second for these models.
        torch.onnx.export(portable_copy(model), (example,), buffer, dynamo=False, input_names=["images"],
                          output_names=["logits"], dynamic_axes={"images": {0: "batch"}, "logits": {0: "batch"}})
    proto = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(proto, {METADATA_FILE: json.dumps(metadata(transform, classes, arch))})
    return proto.SerializeToString()


def export_bytes(model: nn.Module, transform: EvalPreset, classes: list[str], arch: str, fmt: str) -> bytes:
    """The model in `fmt` (torchscript or onnx)."""
    if fmt not in FORMATS:
        raise FtcoreError(f"export format must be torchscript or onnx (got {fmt!r})")
    exporter = torchscript_bytes if fmt == "torchscript" else onnx_bytes
    return exporter(model, transform, classes, arch)


def save_export(model: nn.Module, transform: EvalPreset, classes: list[str], arch: str, fmt: str,
                out: str | Path) -> Path:
    """Write the export to `out`; an unwritable place is one clear error."""
    payload = export_bytes(model, transform, classes, arch, fmt)
    out = Path(out).expanduser()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(payload)
    except OSError as e:
        raise FtcoreError(f"cannot write {out} ({e.strerror or e}); choose a writable file (--out)") from None
    return out
