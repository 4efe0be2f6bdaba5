
import socket

import pytest

from catalogs.records import Sample
from judges.llm_judge import (
    LABELS,
    VERDICT_SCHEMA,
    build_request,
    judge_batch,
    load_prompt,
    parse_response,
    render,
)
from tests.helpers import ScriptedOpenAIServer


def _sample(i=0, **kw):
    base = dict(generation_id=f"g{i}", problem="What is 1/2 as a decimal?", reference="0.5",
                answer=r"The answer is \boxed{\frac{1}{2}}.")
    base.update(kw)
    return Sample(**base)


def test_prompt_is_versioned_and_renders_math_safely():
    t = load_prompt("llm_judge_v1")
    req = build_request(_sample(problem=r"Find $x$ with {braces} and \frac{1}{2}"), t)
    content = req.messages[0]["content"]
    assert r"Find $x$ with {braces} and \frac{1}{2}" in content and "0.5" in content
    assert r"\boxed{\frac{1}{2}}" in content and "{{" not in content
    assert req.json_schema == VERDICT_SCHEMA and req.key == "g0"
    assert render("{{a}} {{b}}", a="$1$", b="{x}") == "$1$ {x}"
    with pytest.raises(FileNotFoundError, match="known prompts: .*llm_judge_v1"):
        load_prompt("llm_judge_v999")


def test_parse_response():
    v = parse_response('{"verdict": "equivalent", "reason": "same value"}')
    assert v.passed and v.reason == "equivalent" and v.details["judge_reason"] == "same value"
    assert parse_response('```json\n{"verdict": "different", "reason": "x"}\n```').reason == "different"
    assert parse_response('{"verdict": "Ambiguous", "reason": ""}').reason == "ambiguous"
    for garbage in ["", "yes", '{"verdict": "maybe"}', "[1,2]", '{"verdict": 1}', '{"verdict": "equiv']:
        v = parse_response(garbage)
        assert v.reason == "unparseable_judge_response" and not v.passed


@pytest.fixture
def garbage_server():
    """A remote API that ignores structured output: valid OpenAI envelope, non-JSON content."""
    with ScriptedOpenAIServer(lambda body: "Sure! They look the same to me.") as srv:
        yield srv


def test_unparseable_reply_from_remote_api(garbage_server):
    from backends.openai_backend import OpenAIBackend

    backend = OpenAIBackend(garbage_server.base_url, "judge", max_retries=0, timeout_s=10)
    samples = [_sample(0), _sample(1, reference=None), _sample(2, answer="", text="")]
    got = judge_batch(samples, backend)
    assert [v.reason for v in got] == ["unparseable_judge_response", "no_reference", "no_prediction"]
    assert got[0].details["raw"].startswith("Sure!")
    # The schema was sent, so a compliant server would have had to answer in it.
    sent = garbage_server.bodies[0]
    assert sent["response_format"]["json_schema"]["schema"] == VERDICT_SCHEMA


def test_backend_error_policy():
    """An endpoint that is down (nothing listens on the port): an error by default, or a verdict saying so."""
    from backends import BackendError
    from backends.openai_backend import OpenAIBackend

    # A port we hold bound but never listen on: connections are refused at once, and nobody else can take
    # the port meanwhile (a port merely found free could be taken by another job before we connect).
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        # probe=False: the backend would refuse a dead endpoint at construction; here it must fail mid-judging
        down = OpenAIBackend(f"http://127.0.0.1:{held.getsockname()[1]}/v1", "judge", max_retries=0,
                             timeout_s=60, probe=False)
        with pytest.raises(BackendError, match="127.0.0.1"):
            judge_batch([_sample()], down)
        v = judge_batch([_sample()], down, on_backend_error="verdict")[0]
        assert v.reason == "judge_backend_error" and "127.0.0.1" in v.details["error"]
        down.close()


def test_end_to_end_against_served_tiny_model(vllm_server, tiny_model_dir):
    from transformers import AutoTokenizer

    from backends.openai_backend import OpenAIBackend

    # The schema lets JSON carry any whitespace between tokens, and a random model happily emits
    # newlines until max_tokens. A real judge does not; here we ban whitespace-only tokens.
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    spaces = {str(i): -100 for i in range(len(tok)) if tok.decode([i]).strip() == "" and tok.decode([i])}
    backend = OpenAIBackend(vllm_server, "tiny", max_retries=1, timeout_s=120)
    samples = [_sample(0), _sample(1, reference="0.25", answer=r"\boxed{0.5}")]
    got = judge_batch(samples, backend, max_tokens=400, request_extra={"body": {"logit_bias": spaces}})
    for v in got:
        assert v.reason in LABELS, v  # the random tiny model says anything, but it parses
        assert v.judge == "llm_judge" and v.judge_version == "1+llm_judge_v1"
        assert v.passed == (v.reason == "equivalent")
