"""Figures: pure functions of result tables, returning matplotlib Figures (STYLE.md habit 6).

Importing the package selects the file-only Agg backend once, before any module imports pyplot:
figures are files, and the machines that run this have no display.
"""

import matplotlib

matplotlib.use("Agg")
