"""The check of a dataset's photos for wrong labels, near-duplicates and leaks between splits, from one embedding of
every photo by the network the user picked."""
