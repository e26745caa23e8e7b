"""The scale ladder: verdicts of every profile side by side, and one sentence per claim."""
import math

from refine_utils import ladder, scorecard
from refine_utils.ladder import Rung
from refine_utils.scorecard import Check, Row


def row(item, verdict, outcomes, texts=None, counts=None):
    texts = texts or [f"condition {k} (< 0)" for k in range(len(outcomes))]
    counts = counts or [""] * len(outcomes)
    checks = [Check(t, 0.1 * k, False, o, reason="stored nowhere" if o == "not run" else "", counts=n)
              for k, (t, o, n) in enumerate(zip(texts, outcomes, counts))]
    key = next((c.key for c in scorecard.CLAIMS if c.item == item), "")
    return Row(item, "the paper says so", checks, verdict, key=key)


def test_trend_toward_away_and_flat():
    rungs = [Rung("smoke", [row("Fig. 4", "not", ["fails", "fails", "holds"]), row("Fig. 5", "partly", ["holds", "fails"])]),
             Rung("cifar10-cpu", [row("Fig. 4", "partly", ["holds", "fails", "holds"]), row("Fig. 5", "not", ["fails", "fails"])]),
             Rung("cifar10-long", None)]
    assert "moves toward the paper" in ladder.trend("Fig. 4", rungs)
    assert "not at `smoke` (1/3) → partly at `cifar10-cpu` (2/3)" in ladder.trend("Fig. 4", rungs)
    assert "moves away from the paper" in ladder.trend("Fig. 5", rungs)
    same = [Rung("a", [row("X", "partly", ["holds", "fails"])]), Rung("b", [row("X", "partly", ["fails", "holds"])])]
    assert "does not move with scale" in ladder.trend("X", same)
    # within the same verdict, more conditions holding is a move toward the paper
    more = [Rung("a", [row("X", "partly", ["holds", "holds", "fails"])]), Rung("b", [row("X", "partly", ["holds", "holds", "holds", "fails"])])]
    assert "toward" in ladder.trend("X", more)


def test_trend_is_read_on_real_cifar_once_two_of_its_rungs_are_judged():
    """smoke's digits are another dataset: reproduced there, not at cifar10-cpu, partly at
    cifar10-long is a move toward the paper (cifar10-cpu -> cifar10-long), not away from it."""
    rungs = [Rung("smoke", [row("X", "reproduced", ["holds", "holds"])]),
             Rung("cifar10-cpu", [row("X", "not", ["fails", "fails"])]),
             Rung("cifar10-long", [row("X", "partly", ["holds", "fails"])])]
    said = ladder.trend("X", rungs)
    assert "moves toward the paper with scale (on the same data, from `cifar10-cpu` to `cifar10-long`)." in said
    assert said.startswith("X: reproduced at `smoke` (2/2) → not at `cifar10-cpu` (0/2)")
    assert "away" in ladder.trend("X", rungs[:2])  # one CIFAR rung: smoke is all there is to compare with


def test_rows_not_judged_or_not_run_are_left_out_of_the_trend():
    rungs = [Rung("smoke", [row("Fig. 8", "not yet run", [])]),
             Rung("cifar10-cpu", [row("Fig. 8", "not run", ["not run"])]),
             Rung("cifar10-long", [row("Fig. 8", "reproduced", ["holds"])])]
    assert ladder.trend("Fig. 8", rungs).endswith("one rung only, so no trend yet.")
    assert ladder.held(rungs[1].row("Fig. 8")) == (0, 0)
    nothing = [Rung("smoke", [row("Fig. 8", "not yet run", [])]), Rung("cifar10-long", None)]
    assert "not judged at any rung" in ladder.trend("Fig. 8", nothing)


def test_table_and_numbers_line_up_conditions_across_rungs():
    texts = ["wide: share negative (= 1)", "gap (< 0)"]
    a = row("Fig. 4", "not", ["fails", "holds"], texts, ["2 zero within noise, 1 positive", ""])
    b = row("Fig. 4", "partly", ["holds", "holds"], texts, ["0 zero within noise, 0 positive", ""])
    assert a.checks[0].label == "wide: share negative (2 zero within noise, 1 positive; = 1)"
    pending = row("Fig. 4", "not yet run", [])  # a rung whose profile has not trained the claim's networks
    rungs = [Rung("smoke", [a]), Rung("cifar10-cpu", [b]), Rung("cifar10-long", [pending]), Rung("cifar10-gpu", None)]
    line = ladder.grid(rungs).split("<tbody>")[1]
    assert line.startswith('<tr><td><a href="../notebooks/fig4_cosine.html">Fig. 4</a></td>')
    cells = [c.split(">", 1)[1] for c in line.split("<td class=")[1:]]
    assert cells == ["not reproduced<small>1/2</small></td>", "partly reproduced<small>2/2</small></td>",
                     "not yet run</td>", "not yet run</td></tr></tbody></table>"]
    body = ladder.numbers("Fig. 4", rungs).split("<tbody>")[1]
    rows = body.split("</tr>")[:-1]
    assert len(rows) == 2  # one row per condition: the counts do not split a condition
    assert rows[0].startswith("<tr><td>wide: share negative (= 1)</td>")
    assert 'data-label="smoke">0 <span class="rf-outcome rf-fails">✗ fails' in rows[0]
    assert 'data-label="cifar10-cpu">0 <span class="rf-outcome rf-holds">✓ holds' in rows[0]
    assert 'data-label="cifar10-long">not yet run</td>' in rows[0]  # the rung's verdict, not a blank
    assert 'data-label="cifar10-gpu">not yet run</td>' in rows[0]


def test_rungs_without_results_read_not_yet_run(tmp_path, monkeypatch):
    monkeypatch.setenv("REFINE_RESULTS_DIR", str(tmp_path))
    rungs = ladder.rungs(("cifar10-long",))
    assert rungs[0].rows is None and ladder.verdict(rungs[0].row("Fig. 4")) == "not yet run"


def test_published_ladder_reads_committed_results():
    rungs = ladder.rungs(("smoke", "cifar10-cpu"))
    items = [r.item for r in rungs[1].rows]
    assert items == [c.item for c in scorecard.CLAIMS]
    grid = ladder.grid(rungs)
    assert grid.count('<td class="rf-cell') == 2 * len(items)
    assert all(f'<td class="rf-cell rf-{r.verdict.replace(" ", "-")}">' in grid for r in rungs[1].rows)
    assert all(not math.isnan(ladder.held(r)[0]) for r in rungs[1].rows)
