"""The `r1f` face (the top floor): the command line composed from each package's own commands, and the demo.

Nothing below imports this package.
"""
