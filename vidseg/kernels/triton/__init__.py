"""Triton kernels for vidseg's two hot ops: `warp` (fused motion warp) and `creff` (fused CReFF aggregation).

Importing this package imports Triton (an ImportError without it; `vidseg.kernels.ops` then runs the reference).
The kernels run on CUDA tensors, and on CPU tensors under Triton's interpreter (TRITON_INTERPRET=1 set before this
package is imported), which is how the tests check them on machines without a GPU.
"""

from vidseg.kernels.triton.creff import MAX_WINDOW, creff, creff_bytes
from vidseg.kernels.triton.warp import warp, warp_bytes

__all__ = ["warp", "warp_bytes", "creff", "creff_bytes", "MAX_WINDOW"]
