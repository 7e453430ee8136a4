"""vidseg.video."""
