"""One name and one colour per method in every saved figure (:mod:`ot_robust.core.style`)."""
import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ot_robust.core.style import figure, figure_name, method_color, save_figure


def test_figure_name_replaces_whole_words_only():
    assert figure_name("Madry (seed 1)") == "PGD-AT (seed 1)"
    assert figure_name("Proposed (seed 1, black-box source)") == "FS (seed 1, black-box source)"
    assert figure_name("FS beats Madry under PGD-20") == "FS beats PGD-AT under PGD-20"
    assert figure_name("Madrya, Unproposed, TRADES") == "Madrya, Unproposed, TRADES"


def test_a_saved_figure_names_each_method_one_way_in_legends_titles_and_ticks(tmp_path):
    fig, ax = figure(3)
    ax[0, 0].plot([0, 1], [0, 1], label="Madry (seed 1)", color=method_color("Madry"))
    ax[0, 0].plot([0, 1], [1, 0], label="Proposed", color=method_color("Proposed"))
    ax[0, 0].legend()
    ax[0, 0].set_title("Proposed vs Madry")
    ax[0, 1].barh([0, 1], [1, 2])
    ax[0, 1].set_yticks([0, 1], ["FS beats Madry", "TRADES"])
    sns.barplot(data=pd.DataFrame({"m": ["Madry", "TRADES"], "v": [1, 2]}), x="m", y="v", ax=ax[0, 2])
    fig.suptitle("Madry")
    paths = save_figure(fig, "names", tmp_path, close=False)
    assert [p.name for p in paths] == ["names.png", "names.pdf"] and all(p.stat().st_size > 0 for p in paths)
    assert [t.get_text() for t in ax[0, 0].get_legend().get_texts()] == ["PGD-AT (seed 1)", "FS"]
    assert ax[0, 0].get_title() == "FS vs PGD-AT" and fig._suptitle.get_text() == "PGD-AT"
    assert [t.get_text() for t in ax[0, 1].get_yticklabels()] == ["FS beats PGD-AT", "TRADES"]
    assert [t.get_text() for t in ax[0, 2].get_xticklabels()] == ["PGD-AT", "TRADES"]
    assert list(ax[0, 1].get_yticks()) == [0, 1]  # the ticks stay where they were
    plt.close(fig)


def test_aliases_share_a_colour():
    assert method_color("Madry") == method_color("PGD-AT") == method_color("Madry (seed 2)")
    assert method_color("Proposed") == method_color("FS")


def test_every_listed_method_has_its_own_marker_and_aliases_share_one():
    from ot_robust.core.style import METHOD_COLORS, method_style

    styles = {figure_name(k): (method_style(k)["color"], method_style(k)["marker"]) for k in METHOD_COLORS}
    assert method_style("Madry (seed 1)") == method_style("PGD-AT")
    firsts = list(dict.fromkeys(figure_name(k) for k in METHOD_COLORS))[:12]
    assert len({styles[k][1] for k in firsts}) == 12  # the first twelve methods: twelve different markers
