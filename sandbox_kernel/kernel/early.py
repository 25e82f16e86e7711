"""The sandbox starts before the kernel's own imports: a speculative, early Launcher.

`python -m sandbox_kernel` first reads the `Sandbox` settings (the same config files and
`--Sandbox.*` arguments the app reads) and starts preparing the container, which the
engine then does while the kernel imports the rest of itself. The app stays
the authority: it adopts the early launcher only if its own checked settings are the same,
and otherwise removes what the early one started (docs/architecture.md, "Starting").
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config_check import CheckedSettings
    from .launcher import Launcher

log = logging.getLogger(__name__)
BASENAME = "sandbox_kernel_config"


class EarlyStart:
    """A launcher made from the settings as the app will (probably) read them.

    It is made in the main thread before the kernel's imports, not beside them: both are
    CPU-bound imports under one GIL, so in parallel neither finishes sooner. Then the
    engine creates and starts the container while the main thread imports the kernel.
    """

    def __init__(self, argv: Sequence[str]) -> None:
        self.launcher: Launcher | None = None
        try:
            self.launcher = _launcher([a for a in argv if a.startswith("--Sandbox.")])
        except Exception:  # the app starts its own; the early one is only a head start
            log.debug("early sandbox start failed", exc_info=True)

    def take(self, checked: CheckedSettings) -> Launcher | None:
        """The early launcher if it has these settings; otherwise it is closed (in the
        background: its container may still be starting) and None is returned."""
        launcher, self.launcher = self.launcher, None
        if launcher is None:
            return None
        if launcher.problems == checked.fatal and same_settings(launcher, checked):
            launcher.config_warnings = checked.warnings
            return launcher
        threading.Thread(target=launcher.close, name="sandbox-early-close",
                         daemon=True).start()
        return None


def same_settings(launcher: Launcher, checked: CheckedSettings) -> bool:
    """Every configurable `Sandbox` value is equal."""
    mine, theirs = launcher.settings, checked.settings
    return all(getattr(mine, name) == getattr(theirs, name)
               for name in theirs.trait_names(config=True))


def _launcher(args: list[str]) -> Launcher:
    from jupyter_core.paths import jupyter_config_path
    from traitlets.config import Config
    from traitlets.config.loader import (
        JSONFileConfigLoader,
        KVArgParseConfigLoader,
        PyFileConfigLoader,
    )

    from .config_sources import ConfigSources
    from .launcher import Launcher

    cli = KVArgParseConfigLoader(args).load_config() if args else Config()
    sources = ConfigSources(cli)
    config = Config()
    for found, _name in sources.load((PyFileConfigLoader, JSONFileConfigLoader), BASENAME,
                                     list(jupyter_config_path()), None):
        config.merge(found)
    config.merge(cli)
    launcher = Launcher.from_config(config, sources=sources)
    launcher.prime()
    launcher.start()
    return launcher
