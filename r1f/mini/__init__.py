"""Mini-R1: the DeepSeek-R1 pipeline in miniature (a task world, a tiny base model trained from scratch,
R1-Zero, cold start, reasoning RL, rejection sampling, the 3:1 mix and distillation), small enough for a
laptop CPU. `r1f demo` runs it; tests/test_demo.py runs its `quick` version."""
