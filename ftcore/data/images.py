"""Images: one safe decoder for dataset photos, previews and uploads, so the model sees them all alike."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from ..errors import FtcoreError

# Larger images are refused before decoding: 100 megapixels is ~300 MB of RGB.
MAX_IMAGE_PIXELS = 100_000_000
UPLOAD_ADVICE = "use a JPEG, PNG or WebP photo"
EXIF_ORIENTATION = 0x0112  # the EXIF tag phones use to say how the photo is turned


def to_rgb(image: Image.Image) -> Image.Image:
    """RGB for any PIL mode: 16-bit and float greys scaled into 0-255, transparency laid on white."""
    if image.mode.startswith("I;16"):  # the top 8 of 16 bits: one uint16 copy, not a float64 one
        image = Image.fromarray((np.asarray(image).astype(np.uint16) >> 8).astype(np.uint8), mode="L")
    elif image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float32)
        top = max(float(values.max()), 255.0)
        image = Image.fromarray(np.clip(values * (255.0 / top), 0, 255).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA", "La", "RGBa") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def _decode(source: str | Path | bytes, label: str, advice: str, draft: bool) -> tuple[Image.Image, tuple[int, int]]:
    """The decoding behind open_image and image_size: (upright RGB image, (width, height) as displayed)."""
    if isinstance(source, bytes):
        if not source:
            raise FtcoreError(f"{label} is empty; {advice}")
        stream = io.BytesIO(source)
    else:
        path = Path(source).expanduser()
        if not path.is_file():  # also refuses FIFOs and devices, which would block or never end
            raise FtcoreError(f"image {label} does not exist; pass the path of a photo")
        if path.stat().st_size == 0:
            raise FtcoreError(f"{label} is empty (0 bytes); {advice}")
        stream = path
    try:
        with Image.open(stream) as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:
                raise FtcoreError(f"{label} is {width}x{height} pixels, more than the {MAX_IMAGE_PIXELS // 10**6} "
                                  f"megapixels allowed; shrink it first")
            if width < 1 or height < 1:
                raise FtcoreError(f"{label} has no pixels ({width}x{height}); {advice}")
            image.seek(0)  # the first frame of an animated GIF/WebP
            if image.getexif().get(EXIF_ORIENTATION) in (5, 6, 7, 8):  # displayed turned by 90 degrees
                width, height = height, width
            if draft and image.format == "JPEG":
                image.draft("RGB", (1, 1))  # decode at 1/8 scale: every byte is still read and checked
            return to_rgb(ImageOps.exif_transpose(image)), (width, height)  # phones store rotation in EXIF
    except FtcoreError:
        raise
    except Image.DecompressionBombError:  # PIL's own guard, for sizes far past ours
        raise FtcoreError(f"{label} is larger than the {MAX_IMAGE_PIXELS // 10**6} megapixels allowed; "
                          "shrink it first") from None
    except Exception as e:  # PIL raises many types on hostile files (OSError, SyntaxError, struct.error, ...)
        kind = "is not an image" if isinstance(e, Image.UnidentifiedImageError) else "cannot be decoded"
        raise FtcoreError(f"{label} {kind} ({type(e).__name__}); {advice}") from None


def open_image(source: str | Path | bytes, name: str | None = None, advice: str = UPLOAD_ADVICE) -> Image.Image:
    """Decode a photo (a path or raw bytes) into RGB; anything unusable raises one FtcoreError ending in `advice`."""
    label = name or (str(source) if not isinstance(source, bytes) else "the upload")
    return _decode(source, label, advice, draft=False)[0]


def image_size(source: str | Path | bytes, name: str | None = None, advice: str = UPLOAD_ADVICE) -> tuple[int, int]:
    """Width and height as displayed, after decoding the whole file cheaply (JPEGs at 1/8 scale).

    Raises the same FtcoreError as open_image for a file open_image would refuse, so a dataset scan finds
    broken photos before training meets them."""
    label = name or (str(source) if not isinstance(source, bytes) else "the upload")
    return _decode(source, label, advice, draft=True)[1]


def jpeg_thumbnail(image: Image.Image, size: int) -> bytes:
    """A JPEG copy of a decoded image, longest side at most `size`."""
    copy = image.copy()
    copy.thumbnail((size, size))
    out = io.BytesIO()
    copy.save(out, format="JPEG", quality=85)
    return out.getvalue()
