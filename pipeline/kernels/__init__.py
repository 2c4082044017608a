"""numba kernels over the ingest's arrays (arrays and plain numbers in, no objects).

``replay_kernel``: the per-packet cost-model replay (one architecture, K time-compression factors).
"""
