"""The output policy, per MIME type and per attack class, without a kernel (fast tier).

Each attack is written as a cell would send it (a raw bundle); the check is on what would
reach the browser. tests/e2e/test_output_policy_browser.py proves the same in Chromium.
"""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from sandbox_kernel.kernel.policy import OutputPolicy, notice_line

HERE = Path(__file__).parent / "outputs"
P = OutputPolicy()
PNG = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 40).decode()
REMOTE = "http://127.0.0.1:9/x"


def clean(data: dict[str, Any], md: Any = None, policy: OutputPolicy = P) -> Any:
    return policy.clean(data, md)


def html(value: Any, policy: OutputPolicy = P) -> str:
    return str(clean({"text/html": value}, policy=policy).data.get("text/html", ""))


def fetches(text: str) -> bool:
    """Anything in the cleaned text that a browser could fetch on its own."""
    low = text.lower()
    return bool(re.search(r"(src|href|srcset|poster|background|data)\s*=\s*\"?(https?:)?//",
                          low) or re.search(r"url\(\s*['\"]?[^#'\" ]", low)
                or "@import" in low or "image-set" in low)


# ----- canonical shapes --------------------------------------------------------------------
def test_list_valued_text_is_joined_then_cleaned() -> None:
    md = clean({"text/markdown": ["<img src=x ", "onerror=alert(1)>", "**b**"]}).data
    assert "onerror" not in md["text/html"] and "<img>" in md["text/html"]
    assert md["text/plain"] == "<img src=x onerror=alert(1)>**b**"  # shown as text only
    out = clean({"text/markdown": ["<img src=x ", "onerror=alert(1)>", "**b**"],
                 "text/html": ["<b onclick='x()'>", "ok</b>"]})
    assert out.data["text/html"] == "<b>ok</b>"  # the bundle's own HTML wins over markdown
    assert "text/markdown" not in out.data


@pytest.mark.parametrize("value", [123, None, {"a": 1}, ["a", 1], b"bytes", [["x"]]])
def test_text_types_of_another_shape_are_dropped(value: Any) -> None:
    out = clean({"text/html": value, "text/plain": "kept"})
    assert out.data == {"text/plain": "kept"}
    assert "text/html that is not a string or list of strings" in notice_line(out.notes)


@pytest.mark.parametrize("value", ["a string", 3, None, True])
def test_json_types_must_be_objects_or_arrays(value: Any) -> None:
    out = clean({"application/json": value})
    assert out.data == {}
    assert out.notes


def test_json_with_nan_or_deep_nesting_is_dropped_and_strings_are_cleaned() -> None:
    assert clean({"application/json": {"x": float("nan")}}).data == {}
    deep: Any = []
    for _ in range(100):
        deep = [deep]
    assert clean({"application/json": deep}).data == {}
    out = clean({"application/json": {"k": "a\ud800b"}})
    assert out.data == {"application/json": {"k": "a\ufffdb"}}


def test_not_a_bundle_and_malformed_mime_types() -> None:
    assert clean("text").data == {}  # type: ignore[arg-type]
    out = clean({"Text/HTML": "<b>x</b>", "text/plain\nx": "y", 5: "z"})  # type: ignore[dict-item]
    assert out.data == {}
    assert notice_line(out.notes).count("malformed MIME type") == 1


def test_unknown_mime_types_are_dropped_with_the_setting_named() -> None:
    out = clean({"application/geo+json": {"type": "Point"}, "text/x-evil": "x",
                 "application/vnd.jupyter.widget-view+json": {"model_id": "1"},
                 "application/pdf": "JVBERi0=", "text/plain": "p"})
    assert out.data == {"text/plain": "p"}
    line = notice_line(out.notes)
    assert "application/geo+json" in line and "c.Sandbox.extra_mime_types" in line
    relaxed = OutputPolicy(extra_mime_types=frozenset({"text/x-evil"}))
    assert clean({"text/x-evil": "x"}, policy=relaxed).data == {"text/x-evil": "x"}


@pytest.mark.parametrize("mime", ["application/javascript", "text/javascript",
                                  "application/x-javascript", "application/ecmascript"])
def test_javascript_is_dropped_unless_allowed(mime: str) -> None:
    out = clean({mime: "alert(1)", "text/plain": "p"})
    assert out.data == {"text/plain": "p"}
    assert "c.Sandbox.allow_javascript = True" in notice_line(out.notes)
    assert mime in clean({mime: "x"}, policy=OutputPolicy(allow_javascript=True)).data


# ----- HTML --------------------------------------------------------------------------------
@pytest.mark.parametrize("attack", [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>",
    "<iframe src='javascript:alert(1)'></iframe>",
    "<iframe srcdoc='<script>alert(1)</script>'></iframe>",
    "<a href='javascript:alert(1)'>x</a>",
    "<a href=' JaVaScRiPt:alert(1)'>x</a>",
    "<a href='data:text/html,<script>alert(1)</script>'>x</a>",
    "<object data='x.swf'></object><embed src='x'>",
    "<form action='http://127.0.0.1:9/'><button>go</button></form>",
    "<meta http-equiv='refresh' content='0;url=http://127.0.0.1:9/'>",
    "<base href='http://127.0.0.1:9/'>",
    "<link rel=stylesheet href='http://127.0.0.1:9/x.css'>",
    "<svg><animate attributeName=href to='javascript:alert(1)'/></svg>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<noscript><p title='</noscript><img src=x onerror=alert(1)>'>",
    "<template><img src=x onerror=alert(1)></template>",
    "<details open ontoggle=alert(1)>",
    "<svg><foreignObject><iframe src=x></iframe></foreignObject></svg>",
])
def test_no_script_or_handler_survives(attack: str) -> None:
    out = html(attack).lower()
    for bad in ("<script", "onerror", "onload", "ontoggle", "javascript:", "<iframe",
                "<object", "<embed", "<form", "<meta", "<base", "<link", "<animate",
                "srcdoc", "data:text/html"):
        assert bad not in out, (attack, out)


@pytest.mark.parametrize("attack", [
    f"<img src='{REMOTE}.png'>",
    f"<img srcset='{REMOTE}.png 1x, {REMOTE}2.png 2x'>",
    "<img src='//127.0.0.1:9/x.png'>",
    "<img src='x.png'>",  # relative: JupyterLab would fetch it from the server
    f"<video poster='{REMOTE}.png'></video><audio src='{REMOTE}.mp3'></audio>",
    f"<picture><source srcset='{REMOTE}.png'></picture>",
    f"<table background='{REMOTE}.png'><td background='{REMOTE}.png'>x</td></table>",
    f"<input type=image src='{REMOTE}.png'>",
    f"<div style=\"background: url('{REMOTE}.png')\">x</div>",
    f"<div style='background-image: \\75 rl({REMOTE}.png)'>x</div>",
    f"<div style='background-image: u\\rl({REMOTE}.png)'>x</div>",
    f"<div style='background-image: image-set(\"{REMOTE}.png\" 1x)'>x</div>",
    f"<div style='background-image: -webkit-image-set(\"{REMOTE}.png\" 1x)'>x</div>",
    f"<div style='b\\61 ckground: url({REMOTE})'>x</div>",
    f"<div style='--x: url({REMOTE}); background: var(--x)'>x</div>",
    f"<div style='list-style-image: url({REMOTE}); cursor: url({REMOTE}), auto'>x</div>",
    f"<style>@import '{REMOTE}.css';</style>",
    f"<style>@\\69mport '{REMOTE}.css';</style>",
    f"<style>@font-face {{font-family: x; src: url({REMOTE}.woff)}}</style>",
    f"<style>.a {{ background: \\75 rl({REMOTE}) }}</style><p class=a>x</p>",
    f"<style>.a {{ background: u\\rl({REMOTE}) }}</style>",
    f"<style>.a {{ background: \\000075rl({REMOTE}) }}</style>",
    f"<style>@media screen {{ .a {{ background: url({REMOTE}) }} }}</style>",
    f"<style>.a {{ content: url({REMOTE}) }}</style>",
    f"<svg><image href='{REMOTE}.png'/><image xlink:href='{REMOTE}.png'/></svg>",
    f"<svg><use href='{REMOTE}.svg#a'/><use xlink:href='{REMOTE}.svg#a'/></svg>",
    f"<svg><filter><feImage href='{REMOTE}.png'/></filter></svg>",
    f"<svg><rect fill='url({REMOTE}#p)' stroke='u\\rl({REMOTE}#q)'/></svg>",
    f"<svg><pattern id=p href='{REMOTE}#p'/><linearGradient xlink:href='{REMOTE}#g'/></svg>",
    f"<svg><style>rect {{ fill: url({REMOTE}#a) }}</style></svg>",
])
def test_nothing_is_fetched_without_a_click(attack: str) -> None:
    for mime in ("text/html", "image/svg+xml"):
        out = clean({mime: attack})
        text = str(out.data.get(mime, ""))
        assert "127.0.0.1" not in text or not fetches(text), (mime, attack, text)
        assert "x.png" not in text or "src" not in text
    assert clean({"text/html": attack}).notes


def test_embedded_images_and_links_that_need_a_click_are_kept() -> None:
    out = html(f"<img src='data:image/png;base64,{PNG}' alt=a>"
               f"<a href='https://example.org/x'>link</a><a href='http://h/'>h</a>"
               "<a href='mailto:x@y'>m</a><a href='/files/x'>r</a>")
    assert f'src="data:image/png;base64,{PNG}"' in out
    assert '<a href="https://example.org/x" rel="noopener noreferrer">link</a>' in out
    assert 'href="http://h/"' in out
    assert "mailto" not in out and "/files/x" not in out
    assert "data:image/svg+xml" not in html("<img src='data:image/svg+xml;base64,PHN2Zz4='>")


@pytest.mark.parametrize("css", [
    "position: fixed; top: 0; left: 0; width: 100vw; height: 100vh",
    "position: sticky; top: 0",
    "position: \\66ixed; inset: 0",
    "position: absolute; top: -500px",
])
def test_overlays_that_cover_the_page_are_removed(css: str) -> None:
    out = html(f"<a href='https://example.org' style='{css}'>click anywhere</a>")
    assert "fixed" not in out and "sticky" not in out and "absolute" not in out
    sheet = html(f"<style>.x {{ {css} }}</style><a class=x href='https://e.org'>y</a>")
    assert "fixed" not in sheet and "sticky" not in sheet and "absolute" not in sheet
    relaxed = html(f"<a href='https://e.org' style='{css}'>x</a>",
                   OutputPolicy(allow_page_styles=True))
    assert "position" in relaxed


def test_global_rules_and_jupyterlab_names_cannot_restyle_the_page() -> None:
    out = html("<style>body { display: none } .jp-Notebook { opacity: 0 } "
               "#jp-main-dock-panel { display: none } * { color: red; stroke: blue } "
               ".own td { color: green }</style>"
               "<div class='jp-Dialog own' id='jp-top-panel'>x</div>")
    assert "display: none" not in out and "opacity" not in out
    assert "color: red" not in out and "stroke: blue" in out  # SVG paint only, globally
    assert ".own td {color: green}" in out
    assert "jp-Dialog" not in out and "jp-top-panel" not in out
    assert 'class="own"' in out


def test_style_text_cannot_close_the_style_element() -> None:
    out = html("<style>.a { content: '</style><img src=x onerror=alert(1)>' }</style>")
    assert "onerror" not in out  # the parser ends <style> early: the <img> is a real one,
    assert out.count("</style>") == 1  # sanitized like any other


def test_nh3_escapes_less_than_in_attribute_values() -> None:
    """The <style> post-pass relies on this (a literal '<style' is always a real tag)."""
    out = html("<p title='<style>x</style>'>y</p>")
    assert "<style" not in out


# ----- SVG ---------------------------------------------------------------------------------
def test_matplotlib_svg_keeps_clip_paths_viewbox_and_internal_references() -> None:
    src = (HERE / "matplotlib.svg").read_text()
    out = clean({"image/svg+xml": src})
    svg = out.data["image/svg+xml"]
    assert not out.notes, notice_line(out.notes)
    root = ET.fromstring(svg)  # a standalone XML document, as img/data: URLs need
    assert root.attrib["viewBox"] == "0 0 216 144"
    assert 'xmlns:xlink="http://www.w3.org/1999/xlink"' in svg
    assert svg.count("<clipPath") == src.count("<clipPath") > 0
    assert svg.count('clip-path="url(#') == src.count('clip-path="url(#')
    assert svg.count('xlink:href="#') == src.count('xlink:href="#') > 0
    assert svg.count("data:image/png;base64,") == 1  # the imshow raster, embedded
    assert "stroke-linejoin: round" in svg


def test_svg_without_namespaces_gets_them() -> None:
    out = clean({"image/svg+xml": "<svg><use xlink:href='#a'/><rect id=a /></svg>"})
    ET.fromstring(out.data["image/svg+xml"])


# ----- Markdown ----------------------------------------------------------------------------
def test_markdown_is_rendered_on_the_host_and_sanitized() -> None:
    out = clean({"text/markdown": f"# Title\n\n![x]({REMOTE}.png) <{REMOTE}> "
                 "[a](javascript:alert(1)) [b](https://e.org) <img src=x onerror=alert(1)>\n\n"
                 "| a | b |\n|---|---|\n| 1 | 2 |\n"})
    assert "text/markdown" not in out.data
    h = out.data["text/html"]
    assert "<h1>Title</h1>" in h and "<table>" in h
    assert "onerror" not in h and 'href="javascript' not in h and "src=" not in h
    assert 'href="https://e.org"' in h
    assert out.data["text/plain"].startswith("# Title")
    assert "images that are not embedded" in notice_line(out.notes)


def test_markdown_keeps_its_own_html_and_plain_when_present() -> None:
    out = clean({"text/markdown": "*a*", "text/html": "<b>h</b>", "text/plain": "p"})
    assert out.data == {"text/html": "<b>h</b>", "text/plain": "p"}


def test_markdown_math_reaches_mathjax_unmangled() -> None:
    h = clean({"text/markdown": "Euler: $e^{i\\pi} + 1 = 0$ and $a_1 * b_2 * c$\n\n"
               "$$\\sum_{i=1}^n i_k * 2$$"}).data["text/html"]
    assert "$e^{i\\pi} + 1 = 0$" in h and "$a_1 * b_2 * c$" in h
    assert "$$\\sum_{i=1}^n i_k * 2$$" in h
    assert "<em>" not in h


# ----- LaTeX (MathJax) ---------------------------------------------------------------------
@pytest.mark.parametrize("macro", ["\\href{http://127.0.0.1:9/}{x}", "\\style{background:"
                                   "url(http://127.0.0.1:9/)}{x}", "\\class{jp-Dialog}{x}",
                                   "\\require{http://127.0.0.1:9/x.js}", "\\cssId{a}{x}",
                                   "\\def\\x{\\href}", "\\url{http://127.0.0.1:9/}",
                                   "^^5chref{x}"])
def test_tex_macros_that_link_load_or_style_are_disarmed(macro: str) -> None:
    for mime in ("text/latex", "text/html", "text/markdown"):
        out = clean({mime: f"$x + {macro}$"})
        text = out.data.get("text/html" if mime == "text/markdown" else mime, "")
        assert not re.search(r"\\(href|style|class|require|cssId|def|url)\b", text), text
        assert "^^" not in text
        assert "TeX macros" in notice_line(out.notes)
    kept = clean({"text/latex": f"${macro}$"}, policy=OutputPolicy(allow_tex_macros=True))
    assert kept.data["text/latex"] == f"${macro}$"


def test_ordinary_latex_is_unchanged() -> None:
    tex = "$$\\frac{a}{b} + \\sqrt{x} + \\mathbf{v} \\cdot \\hat{n} \\eqref{e}$$"
    assert clean({"text/latex": tex}).data == {"text/latex": tex}


# ----- images, JSON ------------------------------------------------------------------------
def test_images_must_be_base64_of_their_format() -> None:
    assert clean({"image/png": PNG + "\n"}).data == {"image/png": PNG}
    assert clean({"image/png": "not base64!"}).data == {}
    assert clean({"image/png": base64.b64encode(b"GIF89a....").decode()}).data == {}
    assert clean({"image/png": PNG + '" onerror="x'}).data == {}
    jpeg = base64.b64encode(b"\xff\xd8\xff\xe0" + b"\0" * 20).decode()
    assert clean({"image/jpeg": jpeg}).data == {"image/jpeg": jpeg}


def test_json_is_kept() -> None:
    assert clean({"application/json": {"a": [1, 2.5, None, "x"]}}).data == {
        "application/json": {"a": [1, 2.5, None, "x"]}}


# ----- visualisation specs -----------------------------------------------------------------
VL = "application/vnd.vegalite.v5+json"
VEGA = "application/vnd.vega.v5+json"
SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"


@pytest.mark.parametrize("mime, spec", [
    (VL, {"$schema": SCHEMA, "data": {"url": f"{REMOTE}.csv"}, "mark": "bar"}),
    (VL, {"data": {"values": [{"u": f"{REMOTE}.png"}]}, "mark": "image",
          "encoding": {"url": {"field": "u"}}}),
    (VL, {"mark": {"type": "image"}, "data": {"values": []}}),
    (VL, {"data": {"values": []}, "mark": "point", "usermeta": {"embedOptions": {
        "loader": {"baseURL": REMOTE}}}}),
    (VL, {"data": {"values": []}, "mark": {"type": "point", "cursor": f"url({REMOTE})"}}),
    (VL, {"data": {"values": []}, "mark": "point", "encoding": {"href": {"value": REMOTE}}}),
    (VEGA, {"data": [{"name": "t", "url": f"{REMOTE}.json"}]}),
    (VEGA, {"marks": [{"type": "image", "encode": {"enter": {"url": {"value": REMOTE}}}}]}),
    (VEGA, {"data": [{"name": "t", "values": [], "transform": [
        {"type": "lookup", "from": {"data": {"URL": f"{REMOTE}.csv"}}}]}]}),
    ("application/vnd.plotly.v1+json", {"data": [{"type": "scattergeo", "lat": [1]}]}),
    ("application/vnd.plotly.v1+json", {"data": [{"type": "scatter"}], "layout": {
        "images": [{"source": f"{REMOTE}.png"}]}}),
    ("application/vnd.plotly.v1+json", {"data": [{"type": "scattermapbox"}]}),
    ("application/vnd.plotly.v1+json", {"data": [{"type": "choropleth"}]}),
    ("application/vnd.plotly.v1+json", {"data": [], "config": {"topojsonURL": REMOTE}}),
    ("text/vnd.mermaid", f"graph TD\n  A[\"<img src='{REMOTE}.png'>\"] --> B"),
    ("text/vnd.mermaid", "graph TD\n  A --> B\n  click A \"http://127.0.0.1:9/\""),
    ("text/vnd.mermaid", "%%{init: {'securityLevel': 'loose'}}%%\ngraph TD\n  A --> B"),
    ("text/vnd.mermaid", "---\nconfig:\n  securityLevel: loose\n---\ngraph TD\n A-->B"),
    ("text/vnd.mermaid", "graph TD\n  A[\"#60;img src=x#62;\"] --> B"),
    ("text/vnd.mermaid", "graph TD\n  A --> B\n  style A fill:u\\rl(x)"),
])
def test_visualisations_that_could_fetch_are_dropped_keeping_the_fallback(
        mime: str, spec: Any) -> None:
    out = clean({mime: spec, "image/png": PNG, "text/plain": "<Chart>"})
    assert out.data == {"image/png": PNG, "text/plain": "<Chart>"}
    assert "c.Sandbox.allow_viz_fetch = True" in notice_line(out.notes)
    kept = clean({mime: spec}, policy=OutputPolicy(allow_viz_fetch=True))
    assert mime in kept.data


@pytest.mark.parametrize("mime, spec", [
    (VL, {"$schema": SCHEMA, "data": {"values": [{"a": 1, "b": 2}]}, "mark": "bar",
          "encoding": {"x": {"field": "a", "type": "ordinal"},
                       "y": {"field": "b", "type": "quantitative"}}}),
    (VEGA, {"$schema": "https://vega.github.io/schema/vega/v5.json", "width": 100,
            "data": [{"name": "t", "values": [{"x": 1}]}],
            "marks": [{"type": "rect", "from": {"data": "t"}}]}),
    ("application/vnd.plotly.v1+json", {"data": [{"type": "scatter", "x": [1], "y": [2]}],
                                        "layout": {"title": {"text": "t"}}}),
    ("text/vnd.mermaid", "graph TD\n  A[Start] --> B{Is it?}\n  B -->|Yes| C[OK]\n"
                         "  classDef big fill:#f9f,stroke:#333\n  class C big"),
])
def test_visualisations_that_fetch_nothing_are_kept(mime: str, spec: Any) -> None:
    out = clean({mime: spec})
    assert out.data == {mime: spec}
    assert not out.notes


# ----- metadata ----------------------------------------------------------------------------
def test_metadata_is_allow_listed_per_mime_type_and_capped() -> None:
    md = {"image/png": {"width": 100, "height": 50, "unconfined": True, "onload": "x"},
          "text/html": {"isolated": True, "extra": 1}, "needs_background": "light",
          "application/vnd.vegalite.v5+json": {"embed_options": {"loader": REMOTE}},
          "isolated": "yes", "huge": "x" * 10_000}
    out = clean({"image/png": PNG, "text/html": "<b>x</b>"}, md)
    assert out.metadata == {"image/png": {"width": 100, "height": 50, "unconfined": True},
                            "text/html": {"isolated": True}, "needs_background": "light"}
    assert "metadata keys outside the allow-list" in notice_line(out.notes)
    out = clean({"image/png": PNG}, {"image/png": {"width": -1, "height": True}})
    assert out.metadata == {}
    capped = OutputPolicy(metadata_limit=20)
    out = clean({"image/png": PNG}, {"image/png": {"width": 100, "height": 50}}, capped)
    assert out.metadata == {} and "metadata over 20 characters" in notice_line(out.notes)
    assert clean({"text/plain": "x"}, ["not", "a", "dict"]).metadata == {}


# ----- what users need ---------------------------------------------------------------------
def test_pandas_table_and_styler_render_as_with_ipykernel() -> None:
    table = clean({"text/html": (HERE / "pandas.html").read_text()})
    h = table.data["text/html"]
    assert not table.notes
    assert '<table border="1" class="dataframe">' in h and "<td>x</td>" in h
    assert ".dataframe thead th {text-align: right}" in h
    styler = clean({"text/html": (HERE / "styler.html").read_text()})
    s = styler.data["text/html"]
    assert "#T_5a1b4_row1_col0 {background-color: yellow; background-color: #023858" in s
    assert 'id="T_5a1b4_row0_col0" class="data row0 col0"' in s
    assert "<caption>cap</caption>" in s
    assert '#T_5a1b4 #T_5a1b4_row0_col0 .pd-t::after {content: "a tooltip"}' in s


def test_sanitize_off_passes_markup_but_still_canonicalises() -> None:
    off = OutputPolicy(sanitize=False)
    out = clean({"text/html": ["<script>x</script>", "<b>"], "text/markdown": "*m*",
                 "application/x-anything": "y", "text/plain": 5}, policy=off)
    assert out.data == {"text/html": "<script>x</script><b>", "text/markdown": "*m*",
                        "application/x-anything": "y"}


def test_notice_line_names_each_class_and_its_setting_once() -> None:
    out = clean({"text/html": f"<img src='{REMOTE}'><img src='{REMOTE}2'><script>x</script>",
                 "application/javascript": "x"})
    line = notice_line(out.notes)
    assert line.startswith("[sandbox] removed from this output: ")
    assert "\n" not in line
    assert "2 x images that are not embedded (to keep: c.Sandbox.allow_remote_images = True)" \
        in line
    assert line.count("application/javascript") == 1
    relaxed = OutputPolicy(allow_remote_images=True)
    assert f'src="{REMOTE}"' in html(f"<img src='{REMOTE}'>", relaxed)


def test_size_counts_data_and_metadata() -> None:
    out = clean({"text/plain": "x" * 100, "application/json": {"a": "y" * 50}},
                {"image/png": {"width": 1}, "needs_background": "dark"})
    assert out.size == 100 + len(json.dumps({"a": "y" * 50})) + len(json.dumps(out.metadata))
