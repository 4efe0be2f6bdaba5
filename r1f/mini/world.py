"""The Mini-R1 task world: multi-step arithmetic with exact answers, and a small non-reasoning pool.

Everything is drawn from one seed, so the same seed gives the same files byte for byte. A problem is a
chain of additions and subtractions of one-digit numbers (`7+5-8`); its worked solution does one
operation per step (`7+5=12, 12-8=4`), the shape of a chain of thought the tiny model can learn.
Train and held-out problems never share an expression.

The base model's pretraining corpus is raw documents, no chat format: mostly worked solutions in
plain text, some written as tagged dialogue (`<think>` and `<answer>`, as web text holds chat logs),
some as a problem with a reasoning block and a one-line summary. That is the "latent skill" the paper
finds in a base model; the tags are not yet reliable, and neither is the arithmetic. A small share of the
documents (`fact_share`) state the world's facts as plain text ("The capital of France is Paris.", "In French,
cat is chat.") or as the lines of dialogue web chat logs hold (`User: translate to French: cat\nAssistant: chat`),
and its greetings as such dialogue: a real base knows facts before any SFT, which only teaches it the chat format
(to answer and stop).
"""
from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

EOS = "<|endoftext|>"

# Non-reasoning prompts with fixed answers: the stand-in for V3's SFT data (greetings, facts, translation).
# Simple queries get no chain of thought, as the paper's "hello" gets none: a greeting, a capital, a word's
# translation is recalled, not worked out. Only the self-cognition answer keeps a short one. A boilerplate one
# ("<think>A fact about France.</think> Paris.") hid the answer from the model: stage 3's SFT (2 epochs over the 113
# answers) had to learn to copy the country into it, and its tiny model lost the facts doing so (2 of 114 right,
# greedy, from a base that knew 56 in chat form; 44 of 114 with the same answers and no chain of thought).
_GREETINGS = (("hello", "Hello! How can I help?"), ("hi", "Hi! Ask me a sum."), ("good morning", "Good morning!"),
              ("thanks", "You are welcome."), ("bye", "Goodbye!"),
              ("who are you?", "<think>A question about me.</think> I am Mini-R1, a tiny model that adds numbers."))
_CAPITALS = (("France", "Paris"), ("Italy", "Rome"), ("Spain", "Madrid"), ("Japan", "Tokyo"), ("Germany", "Berlin"),
             ("Egypt", "Cairo"), ("Peru", "Lima"), ("Kenya", "Nairobi"), ("Norway", "Oslo"), ("Greece", "Athens"),
             ("Cuba", "Havana"), ("Chile", "Santiago"), ("Poland", "Warsaw"), ("Iran", "Tehran"),
             ("Canada", "Ottawa"), ("China", "Beijing"), ("India", "New Delhi"), ("Russia", "Moscow"))
# English word: (French, German, Spanish)
_WORDS = {"cat": ("chat", "Katze", "gato"), "dog": ("chien", "Hund", "perro"), "house": ("maison", "Haus", "casa"),
          "water": ("eau", "Wasser", "agua"), "bread": ("pain", "Brot", "pan"), "sun": ("soleil", "Sonne", "sol"),
          "moon": ("lune", "Mond", "luna"), "book": ("livre", "Buch", "libro"), "tree": ("arbre", "Baum", "arbol"),
          "red": ("rouge", "rot", "rojo"), "blue": ("bleu", "blau", "azul"), "green": ("vert", "gruen", "verde"),
          "one": ("un", "eins", "uno"), "two": ("deux", "zwei", "dos"), "three": ("trois", "drei", "tres"),
          "milk": ("lait", "Milch", "leche"), "fish": ("poisson", "Fisch", "pez"), "bird": ("oiseau", "Vogel", "pajaro"),
          "car": ("voiture", "Auto", "coche"), "city": ("ville", "Stadt", "ciudad"), "day": ("jour", "Tag", "dia"),
          "night": ("nuit", "Nacht", "noche"), "friend": ("ami", "Freund", "amigo"), "school": ("ecole", "Schule",
                                                                                              "escuela"),
          "apple": ("pomme", "Apfel", "manzana"), "door": ("porte", "Tuer", "puerta"), "hand": ("main", "Hand", "mano"),
          "sea": ("mer", "Meer", "mar"), "snow": ("neige", "Schnee", "nieve"), "time": ("temps", "Zeit", "tiempo")}
_LANGS = ("French", "German", "Spanish")


def _capital_question(country: str) -> str:
    return f"what is the capital of {country}?"


def _translate_question(lang: str, word: str) -> str:
    return f"translate to {lang}: {word}"


def _non_reasoning() -> tuple[tuple[str, str], ...]:
    out = list(_GREETINGS)
    out += [(_capital_question(c), f"{a}.") for c, a in _CAPITALS]
    out += [(_translate_question(lang, word), t) for word, trans in _WORDS.items() for lang, t in zip(_LANGS, trans)]
    return tuple(out)


NON_REASONING: tuple[tuple[str, str], ...] = _non_reasoning()


@dataclass(frozen=True)
class Problem:
    expression: str
    steps: tuple[str, ...]
    answer: int

    @property
    def worked(self) -> str:
        return ", ".join(self.steps)


def make_problem(rng: random.Random, operands: int) -> Problem:
    # One-digit operands: a 2-layer model has to learn to copy them and to add, and one-digit copies and sums
    # are what it learns within a couple of minutes on two busy CPU cores.
    nums = [rng.randint(1, 9) for _ in range(operands)]
    ops = [rng.choice("+-") for _ in range(operands - 1)]
    total, steps, expr = nums[0], [], str(nums[0])
    for op, n in zip(ops, nums[1:]):
        new = total + n if op == "+" else total - n
        steps.append(f"{total}{op}{n}={new}")
        expr += f"{op}{n}"
        total = new
    return Problem(expr, tuple(steps), total)


@dataclass(frozen=True)
class WorldSpec:
    seed: int = 0
    train: int = 1500          # problems whose prompts RL and rejection sampling use
    heldout: int = 300         # problems kept out of everything but evaluation
    pretrain_docs: int = 20000  # raw documents for the base model
    # of those, the share that states facts and greetings (no arithmetic): 0.15 since the facts are also written
    # as dialogue (longer lines, fewer facts a document); one base at 0.10 knew fewer (chat: 17 of 114, greedy)
    # and scored 8.9% held-out pass@1, at 0.15 56 of 114 and 17.3% (one pretraining each, seed 0)
    fact_share: float = 0.15
    curated: int = 64          # hand-cleaned cold-start traces (readable worked solutions)
    pairs_per_prompt: int = 4  # preference pairs per non-reasoning prompt, for each reward model
    min_operands: int = 2
    max_operands: int = 3


def problems(spec: WorldSpec) -> tuple[list[Problem], list[Problem], list[Problem]]:
    """(train, held-out, pretraining) problems; held-out expressions appear nowhere else."""
    rng = random.Random(f"mini-r1-world:{spec.seed}")
    seen: set[str] = set()

    def draw(n: int, exclude: set[str]) -> list[Problem]:
        out: list[Problem] = []
        while len(out) < n:
            p = make_problem(rng, rng.randint(spec.min_operands, spec.max_operands))
            if p.expression in exclude:
                continue
            exclude.add(p.expression)
            out.append(p)
        return out

    heldout = draw(spec.heldout, seen)
    train = draw(spec.train, seen)
    # Pretraining problems may repeat among themselves and overlap the train prompts (web text does),
    # never the held-out set.
    held = {p.expression for p in heldout}
    pre: list[Problem] = []
    while len(pre) < spec.pretrain_docs:
        p = make_problem(rng, rng.randint(spec.min_operands, spec.max_operands))
        if p.expression not in held:
            pre.append(p)
    return train, heldout, pre


def pretraining_text(p: Problem, rng: random.Random) -> str:
    """One raw document: no chat template, the base model only ever sees text like this."""
    r = rng.random()
    if r < 0.30:
        return f"Q: {p.expression}\nA: {p.worked}. So {p.answer}."
    if r < 0.70:
        return f"User: {p.expression}\nAssistant: <think>{p.worked}</think> <answer>\\boxed{{{p.answer}}}</answer>"
    return f"Problem: {p.expression}\nResponse: <think>{p.worked}</think> The answer is \\boxed{{{p.answer}}}."


# The plain-text statements of each capital and translation, by the question that asks for it.
_STATEMENTS: dict[str, tuple[str, ...]] = {
    **{_capital_question(c): (f"The capital of {c} is {a}.", f"{a} is the capital of {c}.") for c, a in _CAPITALS},
    **{_translate_question(lang, word): (f"In {lang}, {word} is {t}.", f"The {lang} word for {word} is {t}.")
       for word, trans in _WORDS.items() for lang, t in zip(_LANGS, trans)}}
# The share of the capital and translation lines written as a chat log's turn (the rest as a statement or a Q/A
# line). A tiny base that read them only as statements knew 12 of 18 capitals and 61 of 90 translations in those
# forms and none as the answer to a chat question, and SFT on the 113 chat answers (2 epochs) did not teach them.
CHAT_SHARE = 0.5


def _fact_lines(rng: random.Random) -> list[str]:
    """Every fact of the non-reasoning pool as a line of raw text, each in one of the forms web text writes it:
    greetings as a line of dialogue (`User: hello\nAssistant: Hello! How can I help?`); capitals and translations
    as that dialogue too, as web chat logs hold it (`User: translate to French: cat\nAssistant: chat`), or as a
    statement ("In French, cat is chat.") or a Q/A line. The dialogue's answer is the chat answer's summary, in the
    words the exact-match eval wants: a real base knows the facts, and SFT only teaches it the format."""
    lines = []
    for q, a in NON_REASONING:
        chat = f"User: {q}\nAssistant: {summary(a)}"
        said = _STATEMENTS.get(q, ())  # greetings are only ever said in dialogue
        if not said or rng.random() < CHAT_SHARE:
            lines.append(chat)
        else:
            lines.append(rng.choice((*said, f"Q: {q}\nA: {summary(a)}")))
    return lines


def fact_documents(n: int, rng: random.Random, max_chars: int = 90) -> list[str]:
    """`n` raw documents of facts: each as many fact lines drawn at random as fit in `max_chars` characters (under
    the pretraining's 96-character window), so every fact is seen about equally often and in every form. Dense
    documents, as a fact list or a phrasebook page is: the tiny base needs each fact many times to recall it."""
    docs: list[str] = []
    while len(docs) < n:
        lines = _fact_lines(rng)
        doc = rng.choice(lines)
        for _ in range(4):
            line = rng.choice(lines)
            if len(doc) + 1 + len(line) <= max_chars:
                doc += "\n" + line
        docs.append(doc)
    return docs


def readable(p: Problem) -> str:
    """The readable pattern (reasoning, then a summary that ends with the answer): what cold start wants."""
    return f"<think>{p.worked}</think> The answer is \\boxed{{{p.answer}}}."


def summary(response: str) -> str:
    """The summary of a fixed non-reasoning answer: what follows its `</think>`, or all of it."""
    return response.rpartition("</think>")[2].strip()


# Answers that do not help: what the helpfulness pairs reject beside wrong answers.
_UNHELPFUL = ("I do not know.", "Ask someone else.", "No idea.", "Maybe.", "I cannot say.", "Hmm.")
# Rude (never worse than rude) ways to answer: what the harmlessness pairs reject.
_RUDE_REASONING = ("What a silly question.", "This user is annoying.", "Another dull question.")
_RUDE_SUMMARY = ("{answer} Now go away.", "Obviously {answer} Stop asking.", "{answer} Figure it out yourself.",
                 "Ugh. {answer}", "Go away.", "That is a stupid question.")


def preference_pairs(spec: WorldSpec, aspect: str) -> list[dict[str, str]]:
    """`pairs_per_prompt` preference pairs per non-reasoning prompt ({"prompt", "chosen", "rejected"}), drawn
    from the seed, for the reward model of `aspect`, each side as that reward model reads it:
    - helpfulness, on the summary: chosen the fixed answer's summary; rejected another prompt's summary (a wrong
      answer) or an unhelpful one;
    - harmlessness, on the whole response: chosen the fixed (polite) answer; rejected a rude one, with rude
      reasoning or a rude summary, right or not, so that the tone decides, not the facts."""
    rng = random.Random(f"mini-r1-preferences:{aspect}:{spec.seed}")
    answers = [summary(a) for _, a in NON_REASONING]
    rows = []
    for q, a in NON_REASONING:
        for _ in range(spec.pairs_per_prompt):
            if aspect == "helpfulness":
                chosen = summary(a)
                wrong = [x for x in answers if x != chosen]
                rejected = rng.choice(wrong) if rng.random() < 0.6 else rng.choice(_UNHELPFUL)
            elif aspect == "harmlessness":
                chosen = a
                reasoning = a.partition("</think>")[0].removeprefix("<think>") if "</think>" in a else ""
                rude = rng.choice(_RUDE_SUMMARY).format(answer=summary(a))
                if rng.random() < 0.5:
                    reasoning = rng.choice(_RUDE_REASONING)
                rejected = f"<think>{reasoning}</think> {rude}" if reasoning else rude
            else:
                raise ValueError(f"unknown aspect {aspect!r}; known: helpfulness, harmlessness")
            rows.append({"prompt": q, "chosen": chosen, "rejected": rejected})
    return rows


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    tmp.replace(path)
    return path


@dataclass(frozen=True)
class WorldFiles:
    train: Path
    heldout: Path
    non_reasoning: Path
    curated: Path
    pretrain: Path
    examples: Path
    non_reasoning_bench: Path
    helpfulness_pairs: Path
    harmlessness_pairs: Path


def write_world(out: Path, spec: WorldSpec) -> WorldFiles:
    """Write the world's files (deterministic from `spec.seed`) for `r1f ingest` and the trainers."""
    train, heldout, pre = problems(spec)
    rng = random.Random(f"mini-r1-pretrain:{spec.seed}")

    def row(p: Problem) -> dict:
        return {"problem": p.expression, "answer": str(p.answer), "domain": "math", "kind": "reasoning",
                "language": "en"}

    # Non-reasoning answers were "made elsewhere" (V3's SFT data in the paper): they enter the catalog as an
    # imported run, prompts and responses together.
    nr = [{"problem": q, "kind": "non_reasoning", "domain": "chat", "language": "en", "response": a}
          for q, a in NON_REASONING]
    # The corpus keeps `pretrain_docs` documents: the fact documents take the place of the last arithmetic ones,
    # then the two kinds are shuffled together (from the seed).
    if not 0 <= spec.fact_share < 1:
        raise ValueError(f"WorldSpec.fact_share is {spec.fact_share}; it must be at least 0 and below 1")
    n_facts = round(spec.fact_share * len(pre))
    corpus = [pretraining_text(p, rng) for p in pre[:len(pre) - n_facts]] + fact_documents(n_facts, rng)
    rng.shuffle(corpus)
    texts = [{"text": t} for t in corpus]
    # The cold start's few-shot examples: the first one-step worked solutions. The tiny base saw one short document
    # at a time in pretraining; after longer examples it loses the problem it is asked (none of 96 right with two
    # three-operand examples, 147 tokens; 5-8 of 96 with two one-step ones, 125 tokens).
    examples = [{"problem": p.expression, "reasoning": p.worked, "summary": f"The answer is \\boxed{{{p.answer}}}."}
                for p in [q for q in pre if len(q.steps) == 1][:2]]
    return WorldFiles(
        train=_write_jsonl(out / "train.jsonl", [row(p) for p in train]),
        heldout=_write_jsonl(out / "heldout.jsonl", [row(p) for p in heldout]),
        non_reasoning=_write_jsonl(out / "non_reasoning.jsonl", nr),
        # The paper's cold start also has traces people cleaned up by hand; here, readable worked solutions of
        # the first train problems, imported as an annotators' run and judged like any other.
        curated=_write_jsonl(out / "cold_start_curated.jsonl",
                             [{**row(p), "response": readable(p)} for p in train[:spec.curated]]),
        pretrain=_write_jsonl(out / "pretrain.jsonl", texts),
        examples=_write_jsonl(out / "cold_start_examples.jsonl", examples),
        # The non-reasoning prompts with their fixed answers' summaries: the exact-match eval's benchmark.
        non_reasoning_bench=_write_jsonl(out / "non_reasoning_bench.jsonl",
                                         [{"problem": q, "answer": summary(a)} for q, a in NON_REASONING]),
        helpfulness_pairs=_write_jsonl(out / "preferences_helpfulness.jsonl", preference_pairs(spec, "helpfulness")),
        harmlessness_pairs=_write_jsonl(out / "preferences_harmlessness.jsonl",
                                        preference_pairs(spec, "harmlessness")),
    )
