"""The servers that tests and benchmarks start: the dashboard on a loopback port (`app_server`) and a Ray cluster of
several nodes on this one machine (`ray_cluster`). They measure nothing themselves, and import neither torch nor the
engine, so a browser test can start a server without paying for either."""
