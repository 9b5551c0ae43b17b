"""DL4xx: framework behaviour that gives wrong results without an error."""
