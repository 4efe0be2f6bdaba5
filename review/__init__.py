"""Human review: a local page that shows one sample at a time, and writes every decision to the catalog.

A decision is a verdict of the judge `human`, so it stands in the same lineage as the machine judges and a
release can require it. An edit never overwrites a generation: it is a new generation pointing to its parent.

Floor 3: imports the catalog only; nothing imports it but the `r1f` face.
"""
