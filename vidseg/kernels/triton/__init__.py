"""vidseg.kernels.triton."""
