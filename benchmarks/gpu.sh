#!/usr/bin/env bash
# The GPU checks, as run on a lent GPU machine (docs/benchmarks.md, "GPUs and more than one machine"): the CUDA paths of the engine's tests, then
# the side-by-side benchmark and time to accuracy. Usage: benchmarks/gpu.sh DATA WEIGHTS OUTDIR
# DATA is an ImageFolder tree (a 400+400 / 200+200 subset of the shared hot-dog photos was used), WEIGHTS
# the mobilenet_v2 ImageNet weights file. Needs torch + torchvision with CUDA, numpy, pillow and pytest.
set -u
DATA=$1 WEIGHTS=$2 OUT=$3
export PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
mkdir -p "$OUT"
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  python3 -c "import torch, torchvision; print('torch', torch.__version__, 'torchvision', torchvision.__version__)"
} 2>&1 | tee "$OUT/gpu-machine.txt"

# The engine's tests on the GPU (device auto = cuda): training, decoding on the device, the book's loop.
timeout 60 python3 -m pytest -q -p no:cacheprovider tests/test_training.py tests/test_decoded.py \
  tests/test_reference.py tests/test_models.py 2>&1 | tail -15 | tee "$OUT/gpu-tests.txt"

# Side by side: ResNet-18 (scratch recipe: no ImageNet file needed, same speed) and MobileNetV2 fine-tuning.
timeout 120 python3 -m ftcore bench --data "$DATA" --arch resnet18 --mode scratch --limit 400 --epochs 2 \
  --repeats 2 --json "$OUT/bench-resnet18-gpu.json" 2>&1 | tee "$OUT/bench-gpu.txt"
timeout 90 python3 -m ftcore bench --data "$DATA" --arch mobilenet_v2 --weights "$WEIGHTS" --limit 400 \
  --epochs 2 --repeats 2 --json "$OUT/bench-mobilenet_v2-gpu.json" 2>&1 | tee -a "$OUT/bench-gpu.txt"

# Time to accuracy on the subset: the book's loop (5 epochs) and every preset.
timeout 150 python3 -m ftcore bench --time-to-accuracy --data "$DATA" --arch mobilenet_v2 --weights "$WEIGHTS" \
  --limit 0 --json "$OUT/tta-mobilenet_v2-gpu.json" 2>&1 | tee "$OUT/tta-gpu.txt"
