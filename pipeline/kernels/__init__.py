"""numba kernels over the ingest's arrays (arrays and plain numbers in, no objects).

``replay_kernel``: the per-packet cost-model replay (one architecture, K time-compression factors);
``classify_kernel``: direction, guest and remote key per packet (Mapping.classify);
``host_packets``: the modeled host's packets as the replay kernel's inputs (replay.prepare_chunk).
"""
