"""A run's life, from the Start press to its last event, around one typed contract.

- `status`: how a run stands (Status) and what its events are (EventKind);
- `job`: the contract every kind of job keeps (Job), and `backend`: the one every place that trains runs keeps
  (Backend: submit, snapshot, stop, cancel, list);
- `folder`: every file of a run's folder, its id, and its events written and read;
- `snapshot`: what a page draws of a run or a finder (JobSnapshot, FinderSnapshot), built with keywords;
- `saved`: runs that ended with a model, saved, loaded and listed, and the few models kept in memory;
- `process`: a run (ProcessJob) or a finder (FinderJob) in a child process, watched through its folder;
- `local`: the local backend, which queues runs and admits them to child processes of this machine;
- `cluster`: the Ray backend, which queues runs here and submits each as a Ray job once a node has room, and
  `address`: which Ray heads the lab agrees to speak to;
- `thread`: a run in a background thread of the caller (TrainingJob: the CLI's and the tests' in-process runs).

The child process itself is `ftcore.worker` (`python -m ftcore.worker <run folder>`); the run's records live in
the leaf `ftcore.records`.
"""
