"""Speed benchmarks: how fast the lab trains, starts a run and predicts, and how accurate its presets get in that time.

- `micro_batches`: training throughput of the book's step by micro-batch and precision;
- `levers`: where a CPU training step's time goes, and what each speed lever gives;
- `run_start`: seconds from Start until a run trains, fresh process against the warm fork server;
- `predict_latency`: one photo through the Predict page's path, warm;
- `presets_on_val`: the quick and best presets chosen on a validation split, beside test-only runs;
- `combine_tta`: several `ftcore bench --time-to-accuracy --json` files as one table over seeds;
- `lesson`: the lesson in a minute, timed as the Train page runs it;
- `builder_to_predict`: a dataset built in the lab to a model ready on Predict.

    python -m benchmarks.speed.<script> --help
"""
