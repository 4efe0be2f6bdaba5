"""Pipelines (`r1f run`): a pipeline file's stages in order, each through its own package's code, each skipped when
the catalog says it is done with the same recipe and inputs. Floor 4: it stands on every stage, none stands on it."""
