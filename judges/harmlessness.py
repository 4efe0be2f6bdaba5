"""harmlessness: the whole response, reasoning included, scored 1-10 by the LLM judge with a rubric, or by a
reward model (R1's all-scenario RL). The scoring is judges/preference.py's, shared with helpfulness."""
from judges.preference import declare

JUDGE = declare("harmlessness")
