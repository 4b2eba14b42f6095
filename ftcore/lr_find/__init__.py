"""The learning-rate finder: a range test on a run's own recipe (`range_test`), what it is asked and finds, with its
curve file (`finding`), when it ends early (`stop`), and how its suggestion is read off the curve (`suggest`).

Only `range_test` imports torch: the Train page draws a finding before torch has loaded.
"""
