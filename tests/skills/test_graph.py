from __future__ import annotations

import networkx as nx
import pandas as pd
import pytest

from autocoder.io import InputError
from autocoder.skills.graph import (
    build_graph,
    career_path,
    cooccurrence_weights,
    distinctive_skills,
    link_prediction,
    node2vec_walks,
    occupation_graph,
    read_cooccurrence,
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
    # chance F1 (predicting half the pairs positive) at r negatives per positive is 2/(r+3)
    assert result["node2vec"]["3"] > 2 / (3 + 3)
    assert result["node2vec"]["1"] > result["node2vec"]["3"]  # more negatives: harder


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


CODED = pd.DataFrame(
    {
        "id": ["p1", "p2", "p3", "p4", "p5", "p6"],
        "code_1": ["1111.0", "1111.0", "1111.0", "7111.0", "1111.0", ""],
        "status": ["coded", "review", "coded", "coded", "error:duplicate_id", "error:empty_text"],
    }
)
FOUND = pd.DataFrame(
    {
        "id": ["p1", "p1", "p2", "p3", "p4", "p5", "p6", "p9"],
        "skill_uri": ["s-1-0", "s-7-0", "s-1-0", "", "s-7-0", "s-1-0", "s-1-0", "s-1-0"],
        "status": ["ok", "ok", "ok", "error:empty_text", "ok", "ok", "ok", "ok"],
    }
)


def test_cooccurrence_weights_are_the_share_of_an_occupations_postings() -> None:
    table = cooccurrence_weights(CODED, FOUND)
    got = {(r.code, r.skill_uri): (r.count, r.postings, r.weight) for r in table.itertuples()}
    # p3 has no skills, p5/p6 are coder errors, p9 was not coded
    assert got == {
        ("1111.0", "s-1-0"): (2, 2, 1.0),
        ("1111.0", "s-7-0"): (1, 2, 0.5),
        ("7111.0", "s-7-0"): (1, 1, 1.0),
    }
    assert len(cooccurrence_weights(CODED, FOUND, min_count=2)) == 1
    with pytest.raises(InputError, match="coded postings: no column 'code_2'"):
        cooccurrence_weights(CODED, FOUND, code_column="code_2")


def test_build_graph_reinforces_and_adds_cooccurrence_edges(taxonomy) -> None:
    base = build_graph(taxonomy)
    own = taxonomy.get("1111.0").skills[0].skill_id
    assert not base.has_edge("occ:1111.0", "skill:s-7-0")
    table = pd.DataFrame(
        {
            "code": ["1111.0", "1111.0", "9999.9", "1111.0"],
            "skill_uri": [own, "s-7-0", "s-1-0", "s-unknown"],
            "count": [3, 1, 5, 2],
            "weight": [0.5, 0.25, 1.0, 1.0],
        }
    )
    g = build_graph(taxonomy, table)
    assert g.graph["cooccurrence"] == {"pairs": 4, "reinforced": 1, "added": 1, "skipped": 2}
    u = "occ:1111.0"
    assert g[u][f"skill:{own}"]["weight"] == base[u][f"skill:{own}"]["weight"] + 0.5
    assert g[u][f"skill:{own}"]["cooccurrence"] == 3
    assert g[u]["skill:s-7-0"] == {"weight": 0.25, "relation": "cooccurrence", "cooccurrence": 1}
    assert skill_sets(taxonomy, g)["1111.0"] == skill_sets(taxonomy)["1111.0"] | {"s-7-0"}
    assert skill_sets(taxonomy, base) == skill_sets(taxonomy)


def test_paths_and_distinctive_skills_read_the_enriched_graph(taxonomy) -> None:
    """Every group-7 occupation's postings name s-1-0: it becomes a group-7 skill."""
    sevens = [o.code for o in taxonomy.leaves() if o.code.startswith("7")]
    table = pd.DataFrame({"code": sevens, "skill_uri": "s-1-0", "count": 9, "weight": 1.0})
    kg = build_graph(taxonomy, table)
    plain = distinctive_skills(taxonomy, levels=(1,), top=20)
    rich = distinctive_skills(taxonomy, levels=(1,), top=20, kg=kg)
    assert "s-1-0" not in set(plain[plain["group"] == "7"]["skill_uri"])
    assert "s-1-0" in set(rich[rich["group"] == "7"]["skill_uri"])
    assert all("s-1-0" in skill_sets(taxonomy, kg)[c] for c in sevens)
    before = career_path(taxonomy, "7111.0", "7111.1", max_step=0.9)
    after = career_path(taxonomy, "7111.0", "7111.1", max_step=0.9, kg=kg)
    assert sum(s.distance for s in after) < sum(s.distance for s in before)  # one more shared


def test_read_cooccurrence_streams_both_files(tmp_path) -> None:
    coded, found = tmp_path / "coded.csv", tmp_path / "skills.jsonl"
    CODED.to_csv(coded, index=False)
    FOUND.to_json(found, orient="records", lines=True)
    table = read_cooccurrence(coded, found, chunk_rows=2)
    assert table.equals(cooccurrence_weights(CODED, FOUND))
    with pytest.raises(InputError, match=r"coded.csv: coded postings: no column 'code_9'"):
        read_cooccurrence(coded, found, code_column="code_9")
    other = tmp_path / "other.csv"
    FOUND.rename(columns={"skill_uri": "uri"}).to_csv(other, index=False)
    with pytest.raises(InputError, match=r"other.csv: extracted skills: no column 'skill_uri'"):
        read_cooccurrence(coded, other)
