"""The checks on widget state from the sandbox (kernel/widget_state.py), rule by rule."""

from __future__ import annotations

from typing import Any

from sandbox_kernel.kernel.policy import OutputPolicy
from sandbox_kernel.kernel.widget_state import VIEW_MIME, Model, StateGuard, split_view

GUARD = StateGuard(OutputPolicy(), frozenset({"jupyter-matplotlib"}))
CONTROLS = {"_model_module": "@jupyter-widgets/controls",
            "_view_module": "@jupyter-widgets/controls"}


def open_(name: str, **state: Any) -> tuple[Model, Any]:
    known: dict[str, Model] = {"a" * 32: Model("jupyter.widget", "LayoutModel")}
    return GUARD.opening({**CONTROLS, "_model_name": name, **state}, known)


def test_standard_and_configured_modules_pass_others_are_refused() -> None:
    assert not open_("IntSliderModel", value=1)[1].fatal
    assert not GUARD.opening({"_model_module": "jupyter-matplotlib", "_model_name": "MPLCanvas",
                              "_view_module": "jupyter-matplotlib"}, {})[1].fatal
    verdict = GUARD.opening({"_model_module": "evil", "_model_name": "X"}, {})[1]
    assert "not on the allow-list" in verdict.fatal
    assert GUARD.opening({"_model_name": "X"}, {})[1].fatal  # no module at all
    model, _ = open_("IntSliderModel")
    later = GUARD.update(model, {"_view_module": "evil", "_model_name": "Other", "value": 2}, {})
    assert later.state == {"value": 2} and set(later.refused) == {"_view_module", "_model_name"}


def test_html_value_and_html_descriptions_are_sanitized() -> None:
    _, v = open_("HTMLModel", value='<b>x</b><img src=x onerror="alert(1)"><script>1</script>')
    assert "<b>x</b>" in v.state["value"] and "onerror" not in v.state["value"]
    assert "script" not in v.state["value"] and v.notes
    _, plain = open_("TextModel", description="a < b <i>", value="<script>")
    assert plain.state["description"] == "a < b <i>" and plain.state["value"] == "<script>"
    model, rich = open_("CheckboxModel", description="<svg onload=alert(1)>",
                        description_allow_html=True)
    assert "onload" not in rich.state["description"]
    again = GUARD.update(model, {"description": "<u onclick=x()>u</u>"}, {})
    assert again.state["description"] == "<u>u</u>"  # remembered from the opening


def test_media_urls_css_fetches_and_url_fields_are_refused() -> None:
    model, v = open_("ImageModel", format="url", width="10")
    assert "format" in v.refused and model.url_format and v.state["width"] == "10"
    assert GUARD.update(model, {"value": "http://x/y"}, {}).refused == ["value"]
    _, png = open_("ImageModel", format="png")
    assert png.state["format"] == "png"
    for bad in ("url(http://x/a)", "u\\72 l(http://x)", "image-set('a.png' 1x)", "@import 'x'"):
        _, css = open_("HTMLStyleModel", background=bad, font_size="12px")
        assert css.refused == ["background"], bad
        assert css.state["font_size"] == "12px"
    _, link = open_("SomeModel", href="https://example.com", icon_url="data:image/png;base64,AA")
    assert link.refused == ["href"] and link.state["icon_url"].startswith("data:")


def test_jupyterlab_class_names_are_refused_others_kept() -> None:
    _, v = open_("ButtonModel", _dom_classes=["mine", "jp-mod-fullscreen"])
    assert v.refused == ["_dom_classes"]
    _, fake = open_("VBoxModel", _dom_classes=["sandbox-monitor"])  # the kernel's monitor's
    assert fake.refused == ["_dom_classes"]
    _, ok = open_("ButtonModel", _dom_classes=["mine", "my-sandbox-box"])
    assert ok.state["_dom_classes"] == ["mine", "my-sandbox-box"]


def test_references_must_name_the_sandbox_own_models() -> None:
    _, v = open_("BoxModel", children=["IPY_MODEL_" + "a" * 32, "IPY_MODEL_host"],
                 layout="IPY_MODEL_" + "a" * 32)
    assert v.refused == ["children"] and v.state["layout"] == "IPY_MODEL_" + "a" * 32


def test_output_widget_outputs_go_through_the_policy() -> None:
    outputs = [{"output_type": "stream", "name": "stdout", "text": "hi\x1b[31m"},
               {"output_type": "display_data", "data": {
                   "text/html": "<img src=http://x/a onerror=alert(1)>ok",
                   "application/javascript": "alert(1)", "text/plain": "p"}, "metadata": {}},
               {"output_type": "execute_result", "execution_count": 3,
                "data": {"text/plain": "3"}, "metadata": {}},
               {"output_type": "error", "ename": "E", "evalue": "v", "traceback": ["t"]},
               {"output_type": "bogus"}, "not a dict"]
    _, v = GUARD.opening({"_model_module": "@jupyter-widgets/output", "_model_name":
                          "OutputModel", "outputs": outputs}, {})
    kept = v.state["outputs"]
    assert [o["output_type"] for o in kept] == ["stream", "display_data", "execute_result",
                                                "error"]
    html = kept[1]["data"]["text/html"]
    assert "onerror" not in html and "http://x" not in html
    assert "application/javascript" not in kept[1]["data"] and v.notes


def test_widget_views_must_show_a_known_model() -> None:
    known = {"m1": Model("jupyter.widget", "IntSliderModel")}
    data = {"text/plain": "IntSlider()", VIEW_MIME: {"model_id": "m1", "version_major": 2,
                                                     "version_minor": 0, "extra": "x"}}
    rest, view = split_view(data, known)
    assert rest == {"text/plain": "IntSlider()"}
    assert view == {VIEW_MIME: {"model_id": "m1", "version_major": 2, "version_minor": 0}}
    assert split_view({VIEW_MIME: {"model_id": "host"}}, known)[1] is None
    assert split_view({"text/plain": "x"}, known) == ({"text/plain": "x"}, None)
