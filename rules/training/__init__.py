"""DL6xx: training-loop and I/O hygiene."""
