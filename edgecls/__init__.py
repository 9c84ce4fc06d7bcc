"""edgecls: train, export and run small image classifiers with proven parity."""

__version__ = "0.2.0"
