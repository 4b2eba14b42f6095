"""Training throughput of the book's step (batch 128, summed loss) by micro-batch and precision.

    python -m benchmarks.speed.micro_batches [--data DIR] [--arch resnet18 mobilenet_v2] [--per-class 128]
                                             [--precision fp32 bf16] [--micro-batch 128 64 32 16]

Trains one epoch from scratch (throughput does not depend on the starting weights) on the first
`--per-class` photos of each class and prints examples/sec as the book measures it: training compute only.
"""

from __future__ import annotations

from benchmarks.common import arg_parser, data_dir, machine_line
from ftcore.config import recipe
from ftcore.train.loop import fit

PRECISIONS = ["fp32", "bf16"]
MICRO_BATCHES = [128, 64, 32, 16]


def main() -> None:
    """Print one row per architecture and setting."""
    parser = arg_parser(__doc__)
    parser.add_argument("--data", default=None)
    parser.add_argument("--arch", nargs="+", default=["resnet18", "mobilenet_v2"])
    parser.add_argument("--per-class", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--precision", nargs="+", default=PRECISIONS, choices=PRECISIONS)
    parser.add_argument("--micro-batch", nargs="+", type=int, default=MICRO_BATCHES)
    args = parser.parse_args()
    data = data_dir(args.data)
    print(machine_line(threads=True))
    print(f"{'arch':13s} {'micro-batch':>11s} {'precision':>9s} {'examples/sec':>12s}")
    for arch in args.arch:
        for micro, precision in [(m, p) for p in args.precision for m in args.micro_batch]:
            config = recipe("scratch", arch, data=data, epochs=1, limit=args.per_class, micro_batch=micro,
                            precision=precision, device=args.device)
            speed = fit(config).history.examples_per_sec
            print(f"{arch:13s} {micro:11d} {precision:>9s} {speed:12.1f}", flush=True)


if __name__ == "__main__":
    main()
