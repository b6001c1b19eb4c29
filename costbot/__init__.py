"""costbot: find cloud waste, price it, clean up what a human approved."""

__version__ = "0.1.0"
