from __future__ import annotations

import networkx as nx
import pandas as pd
import pytest

from autocoder.skills.graph import (
    build_graph,
    career_path,
    distinctive_skills,
    link_prediction,
    node2vec_walks,
    occupation_graph,
    skill_sets,
    split_edges,
)


def test_build_graph_is_bipartite_with_relation_weights(taxonomy) -> None:
    g = build_graph(taxonomy)
    kinds = nx.get_node_attributes(g, "kind")
    assert all({kinds[u], kinds[v]} == {"occupation", "skill"} for u, v in g.edges())
    assert {d["weight"] for _, _, d in g.edges(data=True)} == {0.5, 1.0}
    co = pd.DataFrame(
        {"code": ["1111.0"], "skill_uri": [taxonomy.get("1111.0").skills[0].skill_id], "count": [4]}
    )
    g2 = build_graph(taxonomy, co)
    u, v = "occ:1111.0", f"skill:{co.skill_uri[0]}"
    assert g2[u][v]["weight"] == g[u][v]["weight"] + 1.0


def test_split_edges_fractions_and_no_overlap(taxonomy) -> None:
    split = split_edges(build_graph(taxonomy))
    n = len(split.train) + len(split.val) + len(split.test)
    assert n == 280 and len(split.train) == int(0.55 * n) and len(split.val) == int(0.15 * n)
    assert not set(split.train) & set(split.test) and not set(split.val) & set(split.test)


def test_node2vec_walks_follow_edges(taxonomy) -> None:
    g = build_graph(taxonomy)
    walks = node2vec_walks(g, num_walks=2, walk_length=6, p=4.0, q=0.25)
    assert len(walks) == 2 * g.number_of_nodes()
    assert all(g.has_edge(a, b) for w in walks for a, b in zip(w, w[1:], strict=False))


def test_link_prediction_reports_f1_per_method_and_ratio(taxonomy) -> None:
    result = link_prediction(
        build_graph(taxonomy),
        ratios=(1, 3),
        node2vec={"num_walks": 10, "dim": 16, "epochs": 3, "workers": 1},
    )
    assert set(result) == {"preferential_attachment", "node2vec"}
    assert set(result["node2vec"]) == {"1", "3"}
    # group-structured graph: node2vec beats chance F1 (2r/(r+1)... = 0.5 at ratio 1)
    assert result["node2vec"]["1"] > 0.55
    assert all(0 <= v <= 1 for m in result.values() for v in m.values())


def test_career_path_steps_are_short_and_list_skills_to_gain(taxonomy) -> None:
    steps = career_path(taxonomy, "1111.0", "managers worker 7", max_step=0.8)
    assert steps[0].code == "1111.0" and steps[-1].code == "1111.7"
    assert all(s.distance <= 0.8 for s in steps)
    sets = skill_sets(taxonomy)
    for prev, cur in zip(steps, steps[1:], strict=False):
        assert len(cur.gain) == len(sets[cur.code] - sets[prev.code])


def test_career_path_without_a_route_says_so(taxonomy) -> None:
    with pytest.raises(KeyError, match="no career path"):
        career_path(taxonomy, "1111.0", "7111.0", max_step=0.1)
    with pytest.raises(KeyError, match="no occupation matches"):
        career_path(taxonomy, "1111.0", "zzzz qqqq", max_step=0.8)


def test_occupation_graph_distance_is_jaccard() -> None:
    g = occupation_graph({"a": {"x", "y"}, "b": {"y", "z"}, "c": {"q"}}, max_step=0.8)
    assert g["a"]["b"]["weight"] == pytest.approx(1 - 1 / 3)
    assert not g.has_edge("a", "c")


def test_distinctive_skills_pick_the_groups_own_pool(taxonomy) -> None:
    table = distinctive_skills(taxonomy, levels=(1, 4), top=3)
    assert set(table["level"]) == {1, 4}
    top = table[(table["level"] == 1) & (table["group"] == "7")]
    assert len(top) == 3 and all(u.startswith("s-7-") for u in top["skill_uri"])
