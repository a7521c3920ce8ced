"""Shared helpers every layer may use: devices, seeds, atomic writes and provenance (:mod:`.utils`), one vocabulary
of bad input (:mod:`.validation`), datasets and their threat models (:mod:`.data`), confidence intervals and paired
tests (:mod:`.stats`), and the figure style (:mod:`.style`). Nothing here imports another layer of the package."""
