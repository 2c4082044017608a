"""Architecture cost models: registry of architectures (TOML), parameter sets with provenance,
compilation to flat arrays for the numba replay kernels."""
