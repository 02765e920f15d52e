"""The model editor: its controller (the one edit path), the document, the canvas and panels."""
