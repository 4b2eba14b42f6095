"""Memory benchmarks: what a run and a long session hold in resident memory on the CPU.

- `session`: resident memory over a long session of train, predict, train again, as a tab of the app does;
- `table`: peak resident memory of one training run by architecture, precision, micro-batch and image size, and
  the fit that ftcore.train.memory's estimate reads (benchmarks/results/memory-table-cpu.json).

    python -m benchmarks.memory.session --help
    python -m benchmarks.memory.table --help
"""
