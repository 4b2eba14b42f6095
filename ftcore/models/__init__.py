"""The networks: where each architecture's ImageNet weights are (`weights`), reading and loading them (`loading`),
the new output layer (`output_layer`), building a run's model (`build`), reading what a model computes inside
(`activations`), a trained model and what it was trained with (`trained`), and the two files a trained model is
kept in: its checkpoint (`checkpoint`) and its metrics.json (`metrics`).

`weights`, `imagenet`, `trained` and `metrics` need no torch: the pages name a run's weights and read its metrics
before torch has loaded.
"""
