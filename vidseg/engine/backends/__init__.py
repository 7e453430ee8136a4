"""vidseg.engine.backends."""
