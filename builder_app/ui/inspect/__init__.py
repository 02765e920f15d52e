"""The activation inspector: its window (window.py) and its drawings (figure.py); the work is in training/activations.py."""
