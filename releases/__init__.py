"""Releases: what a release becomes. The frozen selection and its manifest, export in the formats trl reads
(`release.py`), the Hub (`publish.py`), the dataset card (`card.py`) and the HTML report (`report.py`).

Floor 2: reads the catalog and imports nothing above it; training reads releases through it.
"""
