"""Where work runs: the devices a run trains on and its arithmetic (`placement`, `precision`), several processes
under torchrun (`distributed`), the CPU priority of batch work (`priority`), and what this machine is (`machine`)."""
