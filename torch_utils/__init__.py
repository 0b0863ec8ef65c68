"""Low-level helpers shared by the whole project: custom ops, checkpoint I/O, small utilities."""
