"""syncd's benchmark: `make bench` (`python -m bench`, see bench/__main__.py)."""
