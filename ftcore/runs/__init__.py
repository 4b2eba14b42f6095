"""A run's life, from the Start press to its last event: the closed sets every part of it shares.

Issue 23 gathers the run layer here piece by piece. So far it holds `status` (how a run stands and what its
events are), `job` (the contract every kind of job keeps) and `folder` (every file of a run's folder, and its
events written and read). The run's records live in the leaf `ftcore.records`; the rest of the layer (`runner`,
`scheduler`, `jobs`, `worker`) still lives beside it in `ftcore`.
"""
