"""vidseg.assets."""
