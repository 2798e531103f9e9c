"""The package version, at the bottom of the house so that every room can name it in its records
without importing the `molmo_eval` API module above them."""

__version__ = "0.1.0"
