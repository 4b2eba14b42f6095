"""Training: the book's train_fine_tuning + train_ch13, and what a run needs around it.

`loop.fit` reads top to bottom like the book: resolve the run's plan (`plan`), its data and model, the book's
optimiser (`optim`), then epochs of `train_one_epoch` (one `step` per batch) each measured by `evaluate`; the quick
and best presets first train the output layer alone on features of the frozen copied layers (`features`, `head`).
Every kind of progress goes to one sink of `ftcore.records` events, kept by the run's recorder (`progress`); the
state after every epoch (`resume`) is one of them. Before each batch the loop asks its steering source for other
learning rates (`steering`; the optimiser's groups by name in `groups`). `memory` estimates what a run needs, for
admission and for the photos per forward pass.
"""
