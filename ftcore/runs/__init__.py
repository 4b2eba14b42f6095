"""A run's life, from the Start press to its last event, around one typed contract.

- `folder`: every file of a run's folder (a `train --out` folder is one too), its id, and its events written and read;
- `snapshot`: what a page draws of a run or a finder (JobSnapshot, FinderSnapshot), built with keywords;
- `saved`: runs that ended with a model, saved, loaded and listed, and the few models kept in memory;
- `job`: the contract every kind of job keeps (Job), and `backend`: the one every place that trains runs keeps
  (Backend: submit, snapshot, stop, cancel, list) with the one every queued run keeps for it (QueuedRun);
- `queue`: the first-in, first-out line every backend keeps;
- `process`: a run (ProcessJob) or a finder (FinderJob) in a child process, watched through its folder;
- `worker`: that child process (`python -m ftcore.runs.worker <run folder>`), and `forkserver`: the warm process
  it is forked from;
- `local`: the local backend, which queues runs and admits them to child processes of this machine;
- `cluster`: the Ray backend, which queues runs here and submits each as a Ray job once a node has room, and
  `address`: which Ray heads the lab agrees to speak to;
- `thread`: a run in a background thread of the caller (TrainingJob: the tests' and experiments' in-process runs);
- `series`: a series of runs (an lr sweep, fine-tune vs scratch, a lesson) trained in the background;
- `steering`: a run steered through its folder while it trains (steer.json asked, steered.json answered).

The run's records and its Status live in the leaf `ftcore.records`.
"""
