"""What a sandbox's widget may tell the browser: the checks on every comm frame's state.

Pure (no Jupyter imports), so each rule is unit-tested in the fast tier. A model's modules
must be on the allow-list; HTML-bearing fields and Output widget outputs go through the
output policy; fields the browser would fetch by itself (a media widget's URL, a CSS url()
in a layout or style) are refused; a reference to another model must name one of the
sandbox's own (docs/architecture.md, "Widgets").
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from .policy import OutputPolicy, clean_text
from .policy.core import notice_line
from .policy.css import RESERVED, CssReport, clean_value

#: The standard ipywidgets modules; `c.Sandbox.widget_modules` adds others.
STANDARD_MODULES = frozenset({"@jupyter-widgets/base", "@jupyter-widgets/controls",
                              "@jupyter-widgets/output"})
WIDGET_TARGET = "jupyter.widget"
VIEW_MIME = "application/vnd.jupyter.widget-view+json"
_REF = re.compile(r"IPY_MODEL_(.*)", re.S)
_URLISH = re.compile(r"(?i)(url|href|src|source)$")
_MEDIA = frozenset({"ImageModel", "VideoModel", "AudioModel"})
_HTML = frozenset({"HTMLModel", "HTMLMathModel"})
_OUTPUT_TYPES = ("stream", "display_data", "execute_result", "error")


@dataclass
class Model:
    """What the host remembers of one of the sandbox's widget models."""

    target: str
    name: str = ""
    allow_html: bool = False
    url_format: bool = False


@dataclass
class Verdict:
    """A state after the checks, and what was refused (field names or whole-model reasons)."""

    state: dict[str, Any]
    refused: list[str] = field(default_factory=list)
    fatal: str = ""  # the whole message is refused
    notes: list[str] = field(default_factory=list)  # what the output policy removed


class StateGuard:
    """Checks widget state from the sandbox against the allow-list and the output policy."""

    def __init__(self, policy: OutputPolicy, modules: frozenset[str]) -> None:
        self.policy = policy
        self.modules = STANDARD_MODULES | modules

    def opening(self, state: dict[str, Any], known: dict[str, Model]) -> tuple[Model, Verdict]:
        """A new model: its modules checked, then its state as an update."""
        model = Model(WIDGET_TARGET, str(state.get("_model_name", "")))
        for key in ("_model_module", "_view_module"):
            module = state.get(key)
            if module is not None and module not in self.modules:
                return model, Verdict({}, fatal=(
                    f"a widget from the module {clean_text(module, 80)!r}, which is not on "
                    "the allow-list (c.Sandbox.widget_modules)"))
        if not isinstance(state.get("_model_module"), str):
            return model, Verdict({}, fatal="a widget without a model module")
        return model, self.update(model, state, known, opening=True)

    def update(self, model: Model, state: dict[str, Any], known: dict[str, Model],
               opening: bool = False) -> Verdict:
        """The fields of one update that may reach the browser."""
        model.allow_html = bool(state.get("description_allow_html", model.allow_html))
        if model.name in _MEDIA and "format" in state:
            model.url_format = str(state["format"]).lower() == "url"
        verdict = Verdict({})
        for key, value in state.items():
            if not self._identity_ok(model, key, value):
                verdict.refused.append(key)
                continue
            kept = self._field(model, key, value, known, verdict)
            if kept is not _REFUSED:
                verdict.state[key] = kept
            else:
                verdict.refused.append(key)
        return verdict

    def _identity_ok(self, model: Model, key: str, value: Any) -> bool:
        """A model keeps its name, and its modules stay on the allow-list."""
        if key == "_model_name":
            return bool(value == model.name)
        if key in ("_model_module", "_view_module"):
            return value is None or value in self.modules
        return not (model.name in _MEDIA and key == "format" and model.url_format)

    def _field(self, model: Model, key: str, value: Any, known: dict[str, Model],
               verdict: Verdict) -> Any:
        if not _refs_ok(value, known):
            return _REFUSED
        if model.name in _MEDIA and key == "value" and model.url_format:
            return _REFUSED
        if key == "_dom_classes" and isinstance(value, list) and any(
                isinstance(c, str) and (RESERVED.match(c) or c.startswith("sandbox-"))
                for c in value):
            return _REFUSED  # JupyterLab's or the kernel's monitor's own class names
        if isinstance(value, str) and _URLISH.search(key) and not value.startswith("data:"):
            return _REFUSED if value else value
        if model.name.endswith(("LayoutModel", "StyleModel")) and not key.startswith("_") \
                and not _css_ok(value):
            return _REFUSED
        if isinstance(value, str) and ((key == "value" and model.name in _HTML) or
                                       (key == "description" and model.allow_html)):
            return self._html(value, verdict)
        if key == "outputs" and model.name == "OutputModel":
            return self.outputs(value, known, verdict)
        return value

    def _html(self, value: str, verdict: Verdict) -> str:
        out = self.policy.clean({"text/html": value})
        if out.notes:
            verdict.notes.append(notice_line(out.notes))
        html = out.data.get("text/html", "")
        return html if isinstance(html, str) else ""

    def outputs(self, value: Any, known: dict[str, Model], verdict: Verdict) -> Any:
        """An Output widget's outputs, each as the policy would publish it."""
        if not isinstance(value, list):
            return _REFUSED
        kept = []
        for item in value[:1000]:
            one = self._output(item, known, verdict) if isinstance(item, dict) else None
            if one is not None:
                kept.append(one)
        return kept

    def _output(self, item: dict[str, Any], known: dict[str, Model],
                verdict: Verdict) -> dict[str, Any] | None:
        kind = item.get("output_type")
        if kind == "stream":
            name = "stderr" if item.get("name") == "stderr" else "stdout"
            return {"output_type": kind, "name": name, "text": clean_text(item.get("text"))}
        if kind == "error":
            return {"output_type": kind, "ename": clean_text(item.get("ename"), 200),
                    "evalue": clean_text(item.get("evalue"), 100_000),
                    "traceback": [clean_text(x, 100_000) for x in
                                  list(item.get("traceback") or [])[-1000:]]}
        if kind not in _OUTPUT_TYPES:
            return None
        data, view = split_view(item.get("data"), known)
        out = self.policy.clean(data, item.get("metadata"))
        if out.notes:
            verdict.notes.append(notice_line(out.notes))
        if not out.data and view is None:
            return None
        clean: dict[str, Any] = {"output_type": kind, "data": {**out.data, **view} if view
                                 else out.data, "metadata": out.metadata}
        if kind == "execute_result":
            count = item.get("execution_count")
            clean["execution_count"] = count if type(count) is int else None
        return clean


class _Refused:
    pass


_REFUSED: Any = _Refused()


def _refs_ok(value: Any, known: dict[str, Model], depth: int = 0) -> bool:
    """Every 'IPY_MODEL_<id>' in a value names a model the sandbox opened."""
    if isinstance(value, str):
        found = _REF.fullmatch(value)
        return found is None or found.group(1) in known
    if depth > 20:
        return False
    if isinstance(value, list):
        return all(_refs_ok(v, known, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(_refs_ok(v, known, depth + 1) for v in value.values())
    return True


def _css_ok(value: Any) -> bool:
    """No value of a layout or style model that would make the browser fetch."""
    if isinstance(value, str):
        return clean_value("value", value, CssReport()) is not None and "\\" not in value
    if isinstance(value, list):
        return all(_css_ok(v) for v in value)
    return not isinstance(value, dict)


def split_view(data: Any, known: dict[str, Model]) -> tuple[Any, dict[str, Any] | None]:
    """A bundle without its widget view, and the view if it shows one of the sandbox's
    models (anything else in that MIME type is dropped)."""
    if not isinstance(data, dict) or VIEW_MIME not in data:
        return data, None
    rest = {k: v for k, v in data.items() if k != VIEW_MIME}
    view = data[VIEW_MIME]
    if not isinstance(view, dict) or view.get("model_id") not in known:
        return rest, None
    major, minor = view.get("version_major", 2), view.get("version_minor", 0)
    if type(major) is not int or type(minor) is not int:
        return rest, None
    return rest, {VIEW_MIME: {"model_id": view["model_id"], "version_major": major,
                              "version_minor": minor}}
