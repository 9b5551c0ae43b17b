"""DL1xx: numerical bugs that turn into NaN/INF."""
