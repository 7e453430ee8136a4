"""vidseg.engine."""
