"""Which config file (or the command line) set each setting, for messages that name it.

The kernel app loads its config files through `ConfigSources.load` instead of traitlets'
own loop: the same files in the same order, but each file's settings are remembered, and a
file that fails to run becomes a problem the kernel reports instead of a line in its log.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

from traitlets.config import Config
from traitlets.config.loader import ConfigFileNotFound

#: What `where()` says for a setting given on the kernel's command line.
COMMAND_LINE = "the kernel's command line (the kernelspec's argv)"


class ConfigSources:
    """The settings of each loaded config file, and the files that failed to load."""

    def __init__(self, cli: Config | None = None) -> None:
        self.cli = cli if cli is not None else Config()
        self.files: list[tuple[str, Config]] = []
        self.failures: list[str] = []

    def load(self, loaders: Sequence[Any], basefilename: str,
             path: str | Sequence[str | None] | None, log: Any) -> Iterator[tuple[Config, str]]:
        """traitlets' Application._load_config_files, recording each file's settings."""
        folders: Sequence[str | None]
        if os.path.isabs(basefilename) or path is None:
            folders = [None]
        elif isinstance(path, str):
            folders = [path]
        else:
            folders = path
        for folder in reversed(folders):  # the list is in descending priority
            for loader_class, ext in zip(loaders, (".py", ".json"), strict=True):
                loader = loader_class(basefilename + ext, path=folder, log=log)
                try:
                    config = loader.load_config()
                except ConfigFileNotFound:
                    continue
                except Exception as exc:  # the file's own code failed: report, go on
                    name = loader.full_filename or basefilename + ext
                    if log:
                        log.error("config file %s failed to load", name, exc_info=True)
                    self.failures.append(
                        f"{name}: the file failed to run ({type(exc).__name__}: "
                        f"{' '.join(str(exc).split())[:200]}), so none of its settings apply")
                    continue
                if config:
                    self.files.append((str(loader.full_filename), config))
                    yield config, loader.full_filename

    def where(self, section: str, name: str | None = None) -> str:
        """The file that set `c.section.name` last (or the section at all), else ''."""
        if _has(self.cli, section, name):
            return COMMAND_LINE
        for filename, config in reversed(self.files):
            if _has(config, section, name):
                return filename
        return ""


def _has(config: Config, section: str, name: str | None) -> bool:
    if not config._has_section(section):
        return False
    return name is None or dict.__contains__(config[section], name)
