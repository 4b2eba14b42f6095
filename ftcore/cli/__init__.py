"""The command line, `python -m ftcore COMMAND` (or `ftcore COMMAND`): one module per group of commands (training,
insight, data, the learning-rate finder, the benchmark, steering a running run), the flags they share (`args`), the
book's lines they print (`report`), and the entry point with its one rule for errors (`main`)."""
