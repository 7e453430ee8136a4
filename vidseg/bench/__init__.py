"""vidseg-bench: side-by-side, interleaved performance measurement with accuracy next to speed."""
