"""The photos a run reads: dataset folders in any common layout and their splits, the one safe photo decoder, the
book's transforms, summaries and the photo check for the explorer, the hot-dog download and uploaded archives,
datasets built in the browser, and the batches one run iterates (decoded once when they fit).

Everything but `decoded` and `run_data` works without torch: the pages list and summarise a dataset before torch
has loaded.
"""
