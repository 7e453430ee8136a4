"""Command-line entry points: thin argument parsing over the public API.

Imported before torch by every console script, so it is where the process-wide OpenMP wait policy is chosen
(`vidseg.threads.wait_passively_in_openmp`; `OMP_WAIT_POLICY=ACTIVE` spins again).
"""

from vidseg.threads import wait_passively_in_openmp

wait_passively_in_openmp()
