"""Benchmarks: long measurements whose figures go in docs/benchmarks.md and results/, never into tests.

Each script is run from the checkout's root as a module, `python -m benchmarks.<folder>.<script> [flags]`; its
docstring (and --help) gives its flags, and most write their report to results/ (or print it, with --json for the
raw numbers). By folder:

- speed/: how fast training and prediction go. `micro_batches` (throughput by micro-batch and precision), `levers`
  (where a CPU step's time goes, and what each speed lever gives), `run_start` (Start to training, fresh process or
  forked), `predict_latency` (one photo through Predict), `presets_on_val` (presets chosen on validation),
  `combine_tta` (time-to-accuracy files over seeds, as one table), `lesson` (the lesson in a minute, timed as the
  Train page runs it), `builder_to_predict` (a dataset built in the lab to a model ready on Predict);
- memory/: resident memory. `session` (a long session of train and predict), `table` (the peak of one run by
  architecture, precision, micro-batch and image size: the figures ftcore.train.memory reads);
- load/: the dashboard under load, driven through Chromium. `cold_start` (a cold server's first minute),
  `classroom` (a class pressing Start on one server; a package: driver, measure, report), `class_split` (what
  slows the pages during a class: the tabs or the run);
- finder/: the learning-rate finder. `rules` (which suggestion rule trains well);
- harness/: the servers tests and benchmarks start (the dashboard on a loopback port, a local Ray cluster);
  measures nothing;
- common.py: the helpers the scripts share (the parser, the data and weights, the machine line, medians and ratios,
  resident memory, Chromium, writing a report as .txt and .json);
- gpu.sh: the GPU checks, as run on a lent GPU machine.
"""
