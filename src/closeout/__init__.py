"""closeout: close stored-value and travel SIM accounts end to end."""

__version__ = "0.1.0"
