"""A run's life, from the Start press to its last event, around one typed contract.

- `folder`: every file of a run's folder (a `train --out` folder is one too), its id, and its events written and read;
- `snapshot`: what a page draws of a run or a finder (JobSnapshot, FinderSnapshot), built with keywords;
- `saved`: runs that ended with a model, saved, loaded and listed, and the few models kept in memory;
- `queue`: where runs train, as one contract: the queueing every backend shares (QueueingBackend: submit, snapshot,
  stop, cancel, list) and what a backend needs of a run it queues (QueuedRun);
- `process`: a run (ProcessJob) or a finder (FinderJob) in a process of its own, watched through its folder;
- `child`: that process on this machine, forked from the standard library's fork server or started fresh, and
  `worker`: what it runs (`python -m ftcore.runs.worker <run folder>`);
- `local`: the local backend, which queues runs and admits them to child processes of this machine;
- `cluster`: the Ray backend, which queues runs here and submits each as a Ray job once a node has room, and
  `address`: which Ray heads the lab agrees to speak to;
- `series`: a series of runs (an lr sweep, fine-tune vs scratch, a lesson) trained in the background;
- `steering`: a run steered through its folder while it trains (asks logged in steer.jsonl, answered in
  steered.json).

The run's records and its Status live in the leaf `ftcore.records`.
"""
