"""Command-line entry points: thin argument parsing over the public API.

Imported before torch by every console script, so it is where the process-wide OpenMP wait policy is chosen:
OpenMP's default spins at each of the model's thread barriers, and when another process holds one of the cores a
thread that missed its turn holds the barrier up for a scheduler time slice. Measured on this project's 2-core
VM with a one-thread training job beside it: 0.5 frames/s spinning, 9.1 passive (960x540 demo, arseg). A value
the user set is kept (`OMP_WAIT_POLICY=ACTIVE` spins again).
"""

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
