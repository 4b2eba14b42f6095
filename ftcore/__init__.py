"""ftcore: the headless engine of the fine-tuning lab (d2l 13.2 fine-tuning, and past it).

One folder per concept, and imports flow one way, from the top down (docs/architecture.md draws the tree):

- `cli`: the command line; `probe`: what only torch can tell a server that has not loaded it;
- `runs`: a run's life in a child process, its folder, the backends that queue and start runs;
- `lab` (the book's loop, experiments, the lesson, the benchmark), `insight` (evaluation, explanations,
  prediction, export, charts) and `lr_find` (the learning-rate range test);
- `train`: the loop, its plan, its steps, its events and what it saves to resume;
- `models`: networks, their weights, checkpoints; `data`: photos, layouts, transforms, batches;
- `devices`: devices, precision, torchrun, priority, the machine;
- `config` (the one TrainConfig), `archs` (the per-architecture registry), `records` (what a run measures and
  reports), `util`, `errors`.

No Streamlit: the dashboard's glue lives in the top-level `app` package.
"""

__version__ = "0.1.0"
