"""Cross-framework checks of jaxconv against the installed PyTorch.

``python -m jaxconv.parity`` runs every op and impl on seeded random valid
configurations and reports the worst forward and gradient errors. Importing
the case generators does not import torch; running a comparison does.
"""
