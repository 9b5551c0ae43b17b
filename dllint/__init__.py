"""dllint: find deep-learning bugs in Python source before the program runs."""

__version__ = "0.1.0"
