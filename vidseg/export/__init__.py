"""vidseg.export."""
