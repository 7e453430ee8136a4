"""The two hot ops (warp, CReFF aggregation): reference semantics, custom ops, Triton kernels."""
