"""Builds language_rule_set.jsonl, the labelled set of tests/judges/test_language_rule.py (ours, hand-written).

    .venv/bin/python tests/judges/data/build_language_rule_set.py

Every text below was written for this project. Labels are by construction, not by our rule:
- `consistent`: a CoT written in the target language, with whatever notation it needs (Greek
  symbols, units, LaTeX, code identifiers, chemical formulas), a quoted foreign term or short glosses;
- `mixed`: a CoT in the target language with sentences or paragraphs of another language spliced in,
  so that the spliced text is 15% or more of its words (English words; a Han/kana character counts
  2/3 of a word), up to a whole CoT in the wrong language. `designed_rate` records that share.
- `short`: too little text to call either way (the rule passes it as `too_short`).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

OUT = Path(__file__).with_name("language_rule_set.jsonl")

EN_NOTATION = [
    "We compute the dipole moment μ = q d, with wavelength λ and angle θ, then check Δ and α against the options.",
    "The photon has wavelength λ = 500 nm, so its energy is E = hc/λ. With h = 6.626 × 10^-34 J·s and "
    "c = 3.0 × 10^8 m/s, we get E ≈ 3.98 × 10^-19 J, which is about 2.48 eV. The work function φ of the metal "
    "is 2.1 eV, so the maximum kinetic energy is K = E − φ ≈ 0.38 eV.",
    r"Let $f(x) = \sin^2 x + \cos^2 x$. By the identity $\sin^2\theta + \cos^2\theta = 1$, f is constant. "
    r"Hence $\int_0^{\pi} f(x)\,dx = \pi$, and the answer is \boxed{\pi}.",
    "We have 0.25 mol of NaCl dissolved in 500 mL of water, so the molarity is 0.5 mol/L. The reaction "
    "2H2 + O2 → 2H2O releases ΔH = −571.6 kJ per mole of O2. Using ΔG = ΔH − TΔS with T = 298 K and "
    "ΔS = −326.7 J/K, we get ΔG ≈ −474.2 kJ, so the reaction is spontaneous.",
    "The sample mean is μ̂ = 4.2 and the standard deviation σ = 1.3, so the z-score of x = 6 is "
    "z = (x − μ)/σ ≈ 1.38. With α = 0.05 and a two-sided test the critical value is 1.96, so we do not "
    "reject the null hypothesis.",
    "The function `compute_loss` returns a tensor; we call loss.backward() and then optimizer.step(). The "
    "variable max_len = 512 limits the input, and batch_size = 32. Since getValue() may return null, we check "
    "it before using it in the loop over range(n).",
    "The Compton shift is Δλ = λ' − λ = (h/mc)(1 − cos θ). For θ = 90° the shift equals the Compton "
    "wavelength, about 2.43 pm. In the metric g_μν the indices μν run from 0 to 3, and the phase ωτ must stay "
    "small compared with one.",
    "In triangle ABC, AB = 5, BC = 12 and angle B is 90°, so AC = 13 by the Pythagorean theorem. The altitude "
    "from B to AC has length AB·BC/AC = 60/13. Let α = ∠BAC; then sin α = 12/13 and cos α = 5/13.",
    "For every ε > 0 we choose δ = ε/3. If |x − 2| < δ then |3x − 6| = 3|x − 2| < 3δ = ε, which proves the "
    "limit. Note that δ depends only on ε, not on x, so the convergence is uniform on this interval.",
    "The resistor R = 47 Ω carries a current I = 0.2 A, so the voltage is V = IR = 9.4 V and the power is "
    "P = I²R ≈ 1.88 W. The capacitor C = 10 μF charges with time constant τ = RC = 0.47 ms.",
    "The ground state energy of the particle in a box is E₁ = π²ħ²/(2mL²). With L = 1 nm and m the electron "
    "mass, E₁ ≈ 0.376 eV. The wavefunction ψ(x) = √(2/L) sin(πx/L) has no nodes inside the box, and |ψ|² "
    "gives the probability density.",
    "We need to evaluate the sum.\n\n$$\\sum_{k=1}^{n} k^2 = \\frac{n(n+1)(2n+1)}{6}$$\n\nFor n = 10 this gives "
    "385. Let me double check with the formula again: 10 times 11 times 21 divided by 6 equals 385. So the "
    "answer is 385.",
    "The molecule CH3COOH is acetic acid with pKa ≈ 4.76. At pH 5.76 the ratio [A⁻]/[HA] = 10, by the "
    "Henderson–Hasselbalch equation. Adding NaOH converts HA into A⁻, and the buffer resists the change in pH "
    "until it is nearly used up.",
    "We write the energy balance:\n\\begin{align} Q &= mc\\Delta T \\\\ &= 2 \\cdot 4186 \\cdot 15 \\end{align}\n"
    "so Q = 125580 J, roughly 125.6 kJ. The efficiency η of the heater is 0.9, so the electrical energy needed "
    "is about 139.5 kJ.",
    "Let X follow a Poisson distribution with rate λ = 3. Then P(X = 0) = e^{-λ} ≈ 0.0498, and the mean and "
    "variance both equal λ. For two independent processes with rates λ and μ, the sum has rate λ + μ, and the "
    "waiting time follows an exponential law.",
    "The wave has angular frequency ω = 2πf and wavenumber k = 2π/λ, so the phase speed is v = ω/k = fλ. With "
    "f = 440 Hz and λ = 0.78 m we find v ≈ 343 m/s, which matches the speed of sound in air at room "
    "temperature.",
    "Wait, let me recheck the kinematics. The ball leaves with v₀ = 20 m/s at θ = 30°, so vₓ = v₀ cos θ ≈ 17.3 "
    "m/s and v_y = v₀ sin θ = 10 m/s. The flight time is t = 2v_y/g ≈ 2.04 s with g = 9.8 m/s², and the range "
    "is R = vₓ t ≈ 35.3 m. Hmm, that matches option (C).",
    "Using Ohm's law in the RLC circuit, the impedance is Z = √(R² + (ωL − 1/(ωC))²). At resonance ω₀ = "
    "1/√(LC), the reactances cancel, so Z = R = 50 Ω and the current amplitude is I₀ = V₀/R = 0.2 A. The "
    "quality factor Q = ω₀L/R tells us how sharp the peak is.",
]

EN_QUOTED = [
    "The Chinese name of the theorem is 勾股定理, which is the Pythagorean theorem. So for the legs 3 and 4 the "
    "hypotenuse is 5, and the area of the triangle is half of 3 times 4, which is 6. Let me verify: 9 + 16 = "
    "25, and the square root of 25 is 5.",
    "The German word Eigenwert means eigenvalue. The matrix has eigenvalues 2 and 3 because its trace is 5 and "
    "its determinant is 6, and these satisfy the characteristic polynomial t^2 - 5t + 6 = 0. So the larger one "
    "is 3.",
    "In French this is called the « théorème des valeurs intermédiaires ». Since f is continuous on [0, 1] with "
    "f(0) < 0 and f(1) > 0, there is a point c in the interval where f(c) = 0. Therefore the equation has at "
    "least one real root between zero and one.",
    "The problem uses the Russian term «производная», which simply means derivative. The derivative of x^3 is "
    "3x^2, so at x = 2 the slope of the tangent line is 12, and the tangent line is y = 12x - 16. We check that "
    "it passes through the point (2, 8).",
    "The Japanese textbook calls this 微分, the derivative. Taking the derivative of sin x gives cos x, and at "
    "x = 0 this equals one, so the tangent to the sine curve at the origin is the line y = x. That matches the "
    "small angle approximation.",
    "Euler wrote about the constant e in his Introductio in analysin infinitorum, and the number is "
    "approximately 2.71828. The limit of (1 + 1/n)^n as n grows is e, and its natural logarithm is exactly one. "
    "So ln e = 1 and the answer is 1.",
    "The Greek word λόγος gives us the word logarithm, which is fitting: the logarithm turns products into sums. "
    "Here log₂ 8 = 3 and log₂ 32 = 5, so log₂ 256 = 8, which we can check because 2 to the power 8 is 256.",
]

# (language, text): CoTs in their own language, with notation and short glosses.
OWN_LANGUAGE = [
    ("zh", "我们先求导数（derivative）。函数 f(x) = x^3 - 3x 的导数是 f'(x) = 3x^2 - 3，令导数等于零，得到 x = 1 "
           "或 x = -1。再求二阶导数，f''(1) = 6 > 0，所以 x = 1 是极小值点，极小值为 -2。"),
    ("zh", "根据牛顿第二定律 (Newton's second law)，F = ma。质量为 2 kg 的物体受到 10 N 的力，所以加速度为 5 m/s²。"
           "经过 3 s 后，物体的速度变为 15 m/s，这段时间内的位移为 22.5 m。所以答案是 22.5 米。"),
    ("zh", "这是一个等差数列 (arithmetic sequence)，首项为 3，公差为 4。第 n 项为 a_n = 3 + 4(n-1) = 4n - 1。"
           "前 20 项的和为 S = 20 × (3 + 79) / 2 = 820。所以答案是 820。"),
    ("zh", "氯化钠 (NaCl) 的摩尔质量是 58.5 g/mol，所以 11.7 g 氯化钠的物质的量是 0.2 mol。溶于水配成 500 mL "
           "溶液，浓度为 0.4 mol/L。中和反应的 ΔH = -57.3 kJ/mol，说明中和反应放热。"),
    ("zh", "设 $x$ 为所求的数。由题意得 $2x + 5 = 17$，所以 $x = 6$。验证：2 × 6 + 5 = 17，正确。答案是 6。"
           "这里用到的方法叫做“移项”（transposition），即把常数移到等式的另一边。"),
    ("zh", "我们用 Python 的 sorted() 函数对列表排序，时间复杂度是 O(n log n)。变量 max_len 记录最长的长度，"
           "初始值为 0。遍历数组时，如果当前元素大于前一个元素，就把 cur_len 加一，否则重置为 1。最后返回 max_len 即可。"),
    ("zh", "光的波长 λ = 600 nm，频率 ν = c/λ = 5 × 10^14 Hz。光子能量 E = hν ≈ 3.3 × 10^-19 J，约为 2.07 eV。"
           "逸出功 W = 1.9 eV，所以光电子的最大初动能约为 0.17 eV，能发生光电效应。"),
    ("zh", "在三角形 ABC 中，AB = 5，BC = 12，∠B = 90°，由勾股定理 (Pythagorean theorem) 得 AC = 13。"
           "设 α = ∠BAC，则 sin α = 12/13，cos α = 5/13，所以 tan α = 12/5。"),
    ("zh", "首先，我们把分母相同的分数相加，得到 5/7。因为 5 和 7 互质，这个分数已经是最简分数了。"
           "再检查一遍：2/7 + 3/7 = 5/7，没有问题。所以答案是 5/7。"),
    ("ja", "まず、方程式 x^2 - 5x + 6 = 0 を因数分解すると (x - 2)(x - 3) = 0 になります。したがって、解は x = 2 と "
           "x = 3 です。検算すると、4 - 10 + 6 = 0 なので正しいです。"),
    ("ru", "Сначала найдём производную функции. Производная от x^2 равна 2x, поэтому в точке x = 3 наклон "
           "касательной равен 6. Уравнение касательной имеет вид y = 6x - 9, и оно проходит через точку (3, 9)."),
    ("fr", "Nous cherchons la valeur de x telle que 2x + 3 = 11. En soustrayant 3 des deux côtés, nous obtenons "
           "2x = 8, donc x = 4. Vérifions : 2 fois 4 plus 3 donne bien 11, donc la réponse est 4."),
    ("de", "Wir berechnen zuerst die Ableitung der Funktion. Die Ableitung von x^2 ist 2x, also ist die Steigung "
           "an der Stelle x = 3 gleich 6. Die Tangente hat daher die Gleichung y = 6x - 9 und geht durch den "
           "Punkt (3, 9)."),
    ("es", "Primero calculamos la derivada de la función. La derivada de x^2 es 2x, por lo que en el punto x = 3 "
           "la pendiente de la recta tangente es 6. La recta tangente tiene la ecuación y = 6x - 9 y pasa por el "
           "punto (3, 9)."),
]

SHORT = [
    ("zh", "副词 (Adverb)"),
    ("zh", "名词 (noun)，动词 (verb)"),
    ("zh", "答案是 5 (five)。"),
    ("en", "Answer: 42, i.e. 四十二."),
    ("en", "x = 3"),
]

# Passages the mixed cases are spliced from.
EN_BASE = [
    "We need to find how many ways there are to choose a committee of three people from a group of ten. Since "
    "the order does not matter, we use combinations rather than permutations. The number of combinations is ten "
    "times nine times eight divided by six, which gives one hundred and twenty. Let me double check that by "
    "another route: choosing the seven people who are left out gives the same count, so the answer is one "
    "hundred and twenty.",
    "First, the train travels at a constant speed for two hours and covers one hundred and forty kilometres, so "
    "its speed is seventy kilometres per hour. Then it slows down for the last part of the trip. We need to find "
    "the total time, so we add the time of each part. The second part is sixty kilometres at forty kilometres "
    "per hour, which takes one and a half hours. So the whole trip takes three and a half hours.",
    "Let me think about the probability that two dice show the same number. There are thirty six equally likely "
    "outcomes in total, and six of them are doubles. So the probability is six over thirty six, which "
    "simplifies to one sixth. Wait, the question asks for the probability that they are different, so we take "
    "the complement and get five sixths.",
]
ZH_BASE = [
    "我们需要从十个人中选出三个人组成一个委员会。因为顺序无关，所以应该用组合而不是排列。组合数等于十乘九乘八再除以六，"
    "结果是一百二十。我们再用另一种方法验证一下：选出不参加的七个人，得到的数目是一样的，所以答案是一百二十。",
    "首先，火车以恒定的速度行驶了两个小时，走了一百四十公里，所以它的速度是每小时七十公里。然后它在最后一段路程减速。"
    "我们要求整个行程的时间，所以把每一段的时间加起来。第二段是六十公里，速度是每小时四十公里，需要一个半小时。"
    "所以整个行程需要三个半小时。",
    "我们来想一想两个骰子点数相同的概率。总共有三十六种等可能的结果，其中有六种是点数相同的。所以概率是三十六分之六，"
    "化简后是六分之一。等一下，题目问的是点数不同的概率，所以要取补集，得到六分之五。",
]
ZH_SPLICE = [
    "所以我们需要再检查一下这个结果是否正确。",
    "这一步的计算其实很简单，只要把两个数相乘就可以了。",
    "等一下，我觉得前面的推理可能有一个小错误，我们重新算一遍。",
    "综上所述，最后的答案应该就是这个数。",
    "我们可以用另一种方法来验证这个结论是否成立。",
    "因此这个问题的关键在于找到正确的计数方法。",
]
EN_SPLICE = [
    "So we need to check this result again before moving on.",
    "This step is actually quite simple, we just multiply the two numbers together.",
    "Wait, I think there might be a small mistake in the reasoning above, let me redo it.",
    "In summary, the final answer should be exactly this number.",
    "We can verify this conclusion in another way to make sure it holds.",
    "So the key to this problem is finding the right way to count.",
]
OTHER_PARAGRAPHS = {
    "fr": "Nous devons maintenant vérifier cette valeur avec soin, car la question est subtile et il faut être "
          "certain que le résultat est bien celui que nous cherchons dans ce problème.",
    "es": "Ahora tenemos que comprobar este resultado con cuidado, porque la pregunta es sutil y hay que estar "
          "seguros de que la respuesta es realmente la que buscamos en este problema.",
    "de": "Jetzt müssen wir diesen Wert sorgfältig überprüfen, denn die Frage ist knifflig und wir müssen sicher "
          "sein, dass das Ergebnis wirklich das ist, was wir in dieser Aufgabe suchen.",
    "ru": "Теперь нужно внимательно проверить это значение, потому что вопрос непростой и надо быть уверенным, "
          "что результат действительно тот, который мы ищем в этой задаче.",
    "ko": "이제 이 값을 신중하게 확인해야 합니다. 질문이 까다롭기 때문에 결과가 우리가 찾는 답인지 확실히 해야 합니다.",
    "ja": "ここで、この値を慎重に確認する必要があります。問題が難しいので、結果が本当に求めている答えかどうか確かめます。",
    "en": "Now we need to check this value carefully, because the question is subtle and we have to be sure that the "
          "result really is the one we are looking for in this problem.",
}
RU_BASE = ("Нам нужно выбрать трёх человек из десяти для комитета. Порядок не важен, поэтому мы используем сочетания, "
           "а не размещения. Число сочетаний равно десять умножить на девять умножить на восемь и разделить на "
           "шесть, то есть сто двадцать. Проверим другим способом: выбор семи человек, которые не войдут, даёт то "
           "же число, значит ответ сто двадцать.")


def words(text: str) -> float:
    """The set's own word count (independent of the rule): letter runs of 2+, a Han/kana char as 2/3."""
    cjk = len(re.findall(r"[\u3040-\u30ff\u4e00-\u9fff]", text))
    return len(re.findall(r"[^\W\d_\u3040-\u30ff\u4e00-\u9fff]{2,}", text)) + cjk / 1.5


def splice(base: str, inserts: list[str], sep: str = " ") -> str:
    """Put the inserts between the base's sentences, spread evenly."""
    parts = re.split(r"(?<=[.。])\s*", base.strip())
    parts = [p for p in parts if p]
    step = max(1, len(parts) // (len(inserts) + 1))
    out: list[str] = []
    todo = list(inserts)
    for i, p in enumerate(parts):
        out.append(p)
        if todo and (i + 1) % step == 0:
            out.append(todo.pop(0))
    out.extend(todo)
    return sep.join(out)


def main() -> None:
    rows: list[dict] = []

    def add(kind: str, language: str, text: str, label: str, rate: float = 0.0) -> None:
        rows.append({"id": f"{kind}_{sum(r['kind'] == kind for r in rows) + 1:02d}", "kind": kind,
                     "language": language, "label": label, "designed_rate": round(rate, 3), "reasoning": text})

    for t in EN_NOTATION:
        add("en_notation", "en", t, "consistent")
    for t in EN_QUOTED:
        add("en_quoted_term", "en", t, "consistent")
    for lg, t in OWN_LANGUAGE:
        add("own_language_glosses", lg, t, "consistent")
    for lg, t in SHORT:
        add("short", lg, t, "short")
    # English CoTs with Chinese sentences spliced in, and Chinese CoTs with English ones, at several rates.
    for base_list, pool, lang, kind in ((EN_BASE, ZH_SPLICE, "en", "en_with_zh"), (ZH_BASE, EN_SPLICE, "zh", "zh_with_en")):
        for b, base in enumerate(base_list):
            for k in (1, 2, 4):
                ins = [pool[(b + j) % len(pool)] for j in range(k)]
                text = splice(base, ins, sep=" " if lang == "en" else "")
                rate = sum(words(x) for x in ins) / words(text)
                if rate >= 0.15:  # below that, one sentence in a long CoT is a slip, not what we label mixing
                    add(kind, lang, text, "mixed", rate)
    # A paragraph of another language in an otherwise clean CoT (fastText territory for Latin and Cyrillic).
    for b, base in enumerate(EN_BASE):
        for lg in ("fr", "es", "de", "ru", "ko", "ja"):
            para = OTHER_PARAGRAPHS[lg]
            text = base + "\n\n" + para
            add("en_with_paragraph", "en", text, "mixed", words(para) / words(text))
    add("ru_with_paragraph", "ru", RU_BASE + "\n\n" + OTHER_PARAGRAPHS["en"], "mixed",
        words(OTHER_PARAGRAPHS["en"]) / words(RU_BASE + OTHER_PARAGRAPHS["en"]))
    add("zh_with_paragraph", "zh", ZH_BASE[0] + "\n\n" + OTHER_PARAGRAPHS["en"], "mixed",
        words(OTHER_PARAGRAPHS["en"]) / words(ZH_BASE[0] + OTHER_PARAGRAPHS["en"]))
    # The whole CoT in the wrong language.
    for b in range(3):
        add("wrong_language", "zh", EN_BASE[b], "mixed", 1.0)
        add("wrong_language", "en", ZH_BASE[b], "mixed", 1.0)
    add("wrong_language", "en", OTHER_PARAGRAPHS["fr"] + "\n\n" + OTHER_PARAGRAPHS["es"], "mixed", 1.0)
    add("wrong_language", "fr", EN_BASE[0], "mixed", 1.0)
    # Notation-heavy CoTs that also switch language: notation must not hide the switch.
    add("notation_and_switch", "zh", EN_NOTATION[1] + " " + ZH_SPLICE[0], "mixed",
        words(EN_NOTATION[1]) / words(EN_NOTATION[1] + ZH_SPLICE[0]))
    add("notation_and_switch", "en", EN_NOTATION[3] + "\n\n" + ZH_BASE[2], "mixed",
        words(ZH_BASE[2]) / words(EN_NOTATION[3] + ZH_BASE[2]))
    OUT.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    print(f"{len(rows)} rows -> {OUT}")


if __name__ == "__main__":
    main()
