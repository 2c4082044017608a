"""pipeline: trace-driven replay of network I/O virtualization costs.

Reads real packet captures, replays every packet through per-packet CPU cost models of host
network architectures (native Linux, Xen's driver domain, DBNet, Xen 1.0) and reports where the
cycles go and what throughput a CPU sustains.
"""

__version__ = "0.1.0"
