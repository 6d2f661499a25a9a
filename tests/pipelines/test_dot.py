from pathlib import Path

import pytest

from pipelines.dot import DotGraph, DotGraphError, graph_to_xml, outline, parse_dot, render_png


def test_parse_well_formed_steps_builds_valid_dag() -> None:
    g = parse_dot('<proposition id="p1">GPU 3 throttled</proposition>'
                  '<critique id="c1" of="p1">no node named<table>a|b</table></critique>'
                  '<verification id="v1" of="c1" result="supported">200 MHz</verification>'
                  '<summary of="v1">done</summary>')
    assert [n.kind for n in g.nodes] == ["proposition", "critique", "verification", "summary"]
    assert g.validate() == []
    assert g.nodes[1].attachments[0].tag == "table"
    assert g.nodes[2].status == "supported"
    assert ("P1", "C1") in g.edges()


def test_parse_repairs_broken_model_output_with_notes() -> None:
    g = parse_dot("<proposition id=a>x</proposition><critique of=zz>dangling<verification of='a' result=refuted>open"
                  "<summary of=s9 id=s9>self</summary>")
    assert g.validate() == []
    assert any("closing tag missing" in n for n in g.notes)
    assert any("points at nothing" in n for n in g.notes)
    assert any("refers to itself" in n for n in g.notes)


def test_parse_breaks_cycles_and_drops_orphans() -> None:
    g = parse_dot('<critique id="c1" of="c2">a</critique><critique id="c2" of="c1">b</critique>')
    assert g.validate() == []
    assert any("cycle broken" in n for n in g.notes) or any("dropped" in n for n in g.notes)


def test_parse_garbage_yields_empty_graph_and_note() -> None:
    g = parse_dot("I think the GPU is fine {{{ <<<")
    assert g.nodes == [] and g.notes


def test_json_round_trip_and_invalid_json() -> None:
    g = DotGraph()
    p = g.add("proposition", "p")
    g.add("critique", "c", [p.id])
    again = DotGraph.from_json(g.to_json())
    assert again.to_json() == g.to_json()
    bad = g.to_json()
    bad["nodes"][1]["refs"] = ["nope"]
    with pytest.raises(DotGraphError, match="missing node nope"):
        DotGraph.from_json(bad)


def test_add_refuses_dangling_critique() -> None:
    g = DotGraph()
    with pytest.raises(DotGraphError):
        g.add("critique", "of nothing")
    with pytest.raises(DotGraphError):
        g.add("critique", "x", ["P9"])


def test_outline_and_png(tmp_path: Path) -> None:
    g = parse_dot('<proposition id="p">root</proposition><critique of="p">why<formula>t = c/f</formula></critique>')
    text = outline(g)
    assert "P1 proposition" in text and "C1 critique (on P1)" in text and "<formula>" in text
    out = render_png(g, tmp_path / "g.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "<critique" in graph_to_xml(g)
