import gc

# Start-up allocates ~10^5 long-lived objects (typer, rich, numpy, numba, pandas): collections during
# the imports cost ~0.05 s and find nothing. Collect nothing while importing, then freeze what was
# imported so that later collections do not walk it.
gc.disable()
from pipeline.cli import main  # noqa: E402

gc.freeze()
gc.enable()
main()
