"""The figures and page furniture the book shows: layout, styles, the paper's marks, captions."""
import base64
import html
import re

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

from refine_utils import page, paper, paper_refs, plots, profiles, registry  # noqa: E402
from refine_utils.figures import FigureData, Series  # noqa: E402
from refine_utils.scorecard import Check, Row  # noqa: E402

META = dict(profile="tiny", role="cifar10", dataset="digits", archs={"resnet32": (0.125, 2)}, seeds=2,
            device="cpu", commits=["0123456789"])


def _fig(panels: list[str], curves=("train", "validation"), n=5) -> FigureData:
    x = list(range(n))
    return FigureData("Fig. X: test", "block", "value",
                      {p: {c: Series(x, [[k + i for i in x], [k + i + 0.5 for i in x]]) for k, c in enumerate(curves)}
                       for p in panels}, dict(META))


def test_at_most_two_panels_per_row_and_train_beside_validation():
    names = [f"{s} {m}" for s in ("train", "validation") for m in ("loss", "acc", "cos")]
    fig = plots.draw(_fig(names))
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["train loss", "validation loss", "train acc", "validation acc", "train cos", "validation cos"]
    rows = {round(ax.get_position().y0, 3) for ax in fig.axes if ax.get_visible()}
    assert len(rows) == 3  # six panels: three rows of two
    assert fig.get_size_inches()[0] == pytest.approx(2 * plots.PANEL[0])


def test_every_series_differs_in_colour_and_line_style():
    fig = plots.draw(_fig(["a", "b"], curves=("borderline, scale 1", "all, scale 1", "borderline, scale 0.5",
                                               "all, scale 0.5")))
    lines = [ln for ln in fig.axes[0].get_lines()]
    styles = [(ln.get_color(), ln.get_linestyle()) for ln in lines]
    assert len({c for c, _ in styles}) == 4 and len({s for _, s in styles}) == 4
    assert [ln.get_color() for ln in fig.axes[1].get_lines()] == [c for c, _ in styles]  # one legend serves all


def test_paired_series_take_their_colour_from_the_variant_and_their_line_style_from_the_group():
    fig = plots.draw(_fig(["a"], curves=("borderline, scale 1", "all, scale 1", "borderline, scale 0.5",
                                          "all, scale 0.5", "scale 0.5")), paired=True)
    styles = {ln.get_label(): (ln.get_color(), ln.get_linestyle()) for ln in fig.axes[0].get_lines()}
    assert styles["borderline, scale 1"][0] == styles["all, scale 1"][0] != styles["all, scale 0.5"][0]
    assert styles["borderline, scale 0.5"][0] == styles["scale 0.5"][0] == styles["all, scale 0.5"][0]
    assert styles["borderline, scale 1"][1] == styles["borderline, scale 0.5"][1] != styles["all, scale 1"][1]
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend == ["scale 1", "scale 0.5", "borderline", "all"]  # one entry per variant and per group


def test_text_is_never_smaller_than_the_bound():
    fig = plots.draw(_fig(["a", "b", "c"]), hlines={"a": (1.0, "whole network")})
    sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text) if t.get_visible() and t.get_text()]
    assert sizes and min(sizes) >= plots.SMALLEST


def test_spectrum_runs_blue_to_red():
    fig = plots.draw(_fig(["a"], curves=[f"block {i}" for i in range(1, 6)]), spectrum=True)
    colors = [ln.get_color() for ln in fig.axes[0].get_lines()]
    assert colors[0][2] > colors[0][0] and colors[-1][0] > colors[-1][2]  # first blue, last red


def test_the_papers_values_are_drawn_where_they_belong():
    marks = [paper_refs.Mark("a", paper.LAST_BLOCK_COSINE, "paper: last block", ("last",)),
             paper_refs.Mark("a", (None, 0.0), "paper: negative"),
             paper_refs.Mark("b", paper.UNROLL_TRAIN_LOSS, "paper: loss", (0, 4))]
    fig = plots.draw(_fig(["a", "b"]), marks=marks)
    a, b = fig.axes[:2]
    star = [ln for ln in a.get_lines() if ln.get_label() == "paper: last block"][0]
    assert list(star.get_xdata()) == [4] and list(star.get_ydata()) == [paper.LAST_BLOCK_COSINE]
    assert a.get_ylim()[0] <= paper.LAST_BLOCK_COSINE  # the band did not cut the star off
    assert b.get_yscale() == "log"  # the paper's loss lies decades below ours: both shown
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"paper: last block", "paper: negative", "paper: loss"} <= set(labels)


def test_marks_name_panels_the_figures_have():
    archs = ["single-representation", "avg-pooling", "resnet110", "wide"]
    panels = {"T.1": archs, "2": archs, "4": archs, "C.2": archs, "C.4": archs, "D.1": ["resnet110-shared"],
              "7": [f"{s} {m}" for s in ("train", "validation") for m in ("loss", "acc", "entropy", "cos", "ratio")]}
    marked = [f for p in registry.PAGES.values() for f in p.figures if f.marks]
    assert sorted(f.label for f in marked) == sorted(panels)
    for f in marked:
        assert {m.panel for m in f.marks} <= set(panels[f.label]), f.label


def test_figure_html_has_number_caption_provenance_alt_and_both_layouts():
    out = page.figure(_fig(["a", "b", "c"]), registry.Figure("2", "What is plotted.", claim="fig2")).data
    assert 'id="figure-2"' in out and "Figure 2.</span> What is plotted." in out
    assert "Profile <code>tiny</code>" in out and "commit <code>0123456789</code>" in out and "mean of 2 seeds" in out
    imgs = re.findall(r'<img class="(rf-\w+)" src="data:image/svg\+xml;base64,([^"]+)" alt="([^"]+)" '
                      r'style="max-width: (\d+)px" data-width-pt="([\d.]+)" data-ncols="(\d)"', out)
    assert [(cls, int(ncols)) for cls, _, _, _, _, ncols in imgs] == [("rf-wide", 2), ("rf-narrow", 1)]
    for _, svg, alt, max_px, width, _ in imgs:
        assert base64.b64decode(svg).lstrip().startswith(b"<?xml") and float(width) > 100
        assert int(max_px) == round(page.SCALE * float(width))  # never scaled past the page's text size
        assert alt.startswith("Fig. X: test. 3 line plots (a, b, c)") and "train, validation" in alt


def test_provenance_names_a_known_profiles_schedule_and_every_commit_once():
    meta = dict(META, profile="smoke", commits=["0123456789", "abcdef0123"])
    text = page.provenance(meta)
    assert html.escape(profiles.SMOKE.schedule_note) in text
    assert text.count("0123456789") == 1 and text.count("abcdef0123") == 1 and "commits <code>" in text


def test_provenance_names_each_networks_own_schedule_when_they_differ():
    prof = profiles.get_profile("cifar10-long")
    text = page.provenance(dict(META, profile="cifar10-long", archs={"resnet110": (0.5, 50), "vit": (1.0, 200)}))
    assert f"resnet110: {html.escape(prof.schedule_note)}" in text  # the paper's SGD schedule, for the ResNet only
    assert "vit: AdamW" in text and "5 % of the epochs, then cosine decay" in text
    assert prof.schedules(["resnet110", "resnet56"]) == prof.schedule_note  # one schedule is said once


def test_verdict_box_shows_badge_claim_numbers_and_scale():
    row = Row("Fig. 2", "The claim.", [Check("first block ratio (> 2)", 3.24, True),
                                      Check("flatness (< 1)", float("nan"), False)], "partly")
    out = page.verdict(row, profiles.setting("smoke")).data
    assert '<span class="rf-badge rf-partly">partly reproduced</span>' in out and "The claim." in out
    assert "3.24" in out and "✓ holds" in out and "✗ fails" in out and "—" in out
    assert "Scale." in out and "profile <code>smoke</code>" in out and "not that the paper is wrong" in out


def test_grid_links_every_claim_to_its_page():
    from refine_utils import scorecard

    rows = [Row(c.item, "c", [], "not yet run", key=c.key) for c in scorecard.CLAIMS]
    out = page.grid(rows).data
    assert out.count("<tr>") == len(scorecard.CLAIMS) + 1
    assert 'href="../notebooks/fig2_l2_ratio.html"' in out and 'href="../notebooks/cifar100.html"' in out
    assert all(c.topic in out for c in scorecard.CLAIMS)  # each claim says what it is about
    assert page.tally(rows) == f"{len(rows)} not yet run"
    assert page.tally([Row("a", "", [], "reproduced"), Row("b", "", [], "not"), Row("c", "", [], "reproduced")]) \
        == "2 reproduced and 1 not reproduced"


def test_every_claim_is_judged_on_exactly_one_page_of_the_book():
    from refine_utils import scorecard
    from refine_utils.book import toc_files

    judged = [k for p in registry.PAGES.values() for k in p.claims]
    assert sorted(judged) == sorted(c.key for c in scorecard.CLAIMS)
    assert {p.notebook for p in registry.PAGES.values()} <= set(toc_files())


def test_mean_band_is_drawn_for_several_seeds_only():
    one = FigureData("t", "x", "y", {"a": {"train": Series([0, 1], [[1.0, 2.0]])}}, dict(META))
    assert not plots.draw(one).axes[0].collections
    assert plots.draw(_fig(["a"])).axes[0].collections
    assert np.isfinite(plots.SMALLEST)


def test_the_gpu_pages_name_the_paper_not_a_file_the_reader_lacks():
    text = page.gpu_costs().data + page.gpu_check().data
    assert "PAPER.md" not in text and page._site("schedules of PAPER.md section 4; see PAPER.md") == "schedules; see the paper"


def test_checks_show_the_seed_spread_and_unjudged_rows_their_reason():
    from refine_utils import scorecard
    from refine_utils.page import _checks, conditions

    check = scorecard.judge("first block's ratio (> 1)", [1.2, 1.4, 1.3], above=1)
    html = _checks([check])
    assert "rf-spread" in html and "seeds 1.2, 1.4, 1.3" in html
    row = scorecard.Row("Appendix D", "claim", [], "not run", reason="its probe was not stored", key="shared_cos")
    assert "its probe was not stored" in conditions([row]).data


def _row(*checks: Check) -> Row:
    return Row("Fig. X", "the paper's claim", list(checks), "partly", key="figx")


def test_the_prose_reads_each_tests_outcome_per_network_or_scale():
    row = _row(Check("resnet110: first block's ratio (> 1)", 1.5, True),
               Check("wide: first block's ratio (> 1)", 0.5, False),
               Check("single-representation: first block's ratio (> 1)", 1.0, False, "within noise"),
               Check("peak above median (< 0)", -1.0, True),
               Check("train loss, after - before (< 0)", -1, True, group="scale 0.25"),
               Check("train loss, after - before (< 0)", 1, False, group="scale 0.5"),
               Check("train loss, after - before (< 0)", 1, False, group="scale 0.75"))
    assert registry.said(row, "first block's ratio") == \
        "holds for ResNet-110, fails for wide and is within noise for single representation"
    assert registry.said(row, "peak above") == "holds"
    assert registry.said(row, "train loss") == "holds at scale 0.25 and fails at scales 0.5 and 0.75"
    same = _row(Check("a: x (> 0)", 1, True), Check("b: x (> 0)", 2, True))
    assert registry.said(same, "x") == "holds for every network"
    with pytest.raises(KeyError, match="figx"):
        registry.said(row, "no such test")
    with pytest.raises(ValueError, match="name no network"):  # two unnamed checks cannot be told apart
        registry.said(_row(Check("gain, 'a' - 'b' (> 0)", 1, True), Check("gain, 'b' - 'c' (> 0)", 1, True)), "gain")


def test_the_fit_sentence_names_the_scale_and_the_un_augmented_accuracy_where_recorded():
    curves = lambda *labels: {label: Series([1, 2], [[0.1, v], [0.1, v]]) for label, v in labels}
    meta = dict(META, profile="p", archs={"resnet110": (0.5, 40), "wide": (0.1, 50)})
    running = FigureData("t", "epoch", "acc", {"resnet110": curves(("train", 0.5), ("validation", 0.4)),
                                               "wide": curves(("train", 0.6), ("validation", 0.55))}, meta)
    text = registry._fit(running)
    assert text.startswith("the networks of profile p, at 0.1–0.5 times the paper's widths and trained 40–50 epochs")
    assert "validation accuracies of 0.40 (ResNet-110) and 0.55 (wide)" in text and "running training accuracies of 0.50–0.60 (on augmented batches)" in text
    seen = FigureData("t", "epoch", "acc", {a: c | curves(("train, un-augmented", 0.9)) for a, c in running.panels.items()},
                      meta)
    assert "0.90 (ResNet-110) and 0.90 (wide) on their un-augmented training images" in registry._fit(seen)


def test_stand_ins_name_every_part_shown_from_another_profile_and_why():
    assert page.stand_ins("smoke") == "Every part of the book reads this profile's own results."
    text = page.stand_ins("cifar10-cpu")
    assert "the CIFAR-100 appendix reads profile smoke, as cifar10-cpu does not run this part (" in text
    assert "the vision-transformer chapter reads profile smoke" in text and "shared-block" not in text
    assert set(page.PART_TITLES) == set(profiles.PARTS)
