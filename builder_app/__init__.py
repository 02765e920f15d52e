"""Build Keras models visually: a node-graph editor with Keras-exact shapes."""

__version__ = "0.1.0"
