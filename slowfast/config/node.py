"""The root config node: fvcore's ``CfgNode`` with errors that name the file and the key.

fvcore answers an unknown key with ``KeyError: 'Non-existent config key: X'`` and a type clash
without the file it came from. Here every key of a YAML file (and of its ``_BASE_`` files) is
checked against the defaults before anything is merged, so a typo fails with the key, the file
that holds it and the closest known key, and the config is left as it was.
"""

from __future__ import annotations

import difflib
import fnmatch
import os
from typing import Any, Dict, Iterator, List, Tuple

import yaml
from fvcore.common.config import CfgNode as _FvCfgNode

BASE_KEY = "_BASE_"

# Keys accepted through ``CfgNode.TOLERATED_NEW_KEYS`` so far (logged as having no effect).
TOLERATED_SEEN: set = set()

# Per-pathway keys the PGT release also wrote as a scalar (``STEP_LEN: 8``).
_SCALAR_TO_LIST_KEYS = ("PGT.STEP_LEN", "PGT.OVERLAP", "PGT.TPOOL_SIZE")


class ConfigKeyError(KeyError):
    """An unknown or ill-typed key in a config file or override list."""

    def __str__(self) -> str:  # KeyError quotes its message; show it plainly.
        return str(self.args[0])


def _flatten(d: Dict[str, Any], prefix: str = "") -> Iterator[Tuple[str, Any]]:
    for k, v in d.items():
        if isinstance(v, dict) and not isinstance(v, _FvCfgNode):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def _all_keys(cfg: _FvCfgNode, prefix: str = "") -> List[str]:
    keys = []
    for k, v in cfg.items():
        if isinstance(v, _FvCfgNode):
            keys.append(f"{prefix}{k}")
            keys.extend(_all_keys(v, f"{prefix}{k}."))
        else:
            keys.append(f"{prefix}{k}")
    return keys


def _lookup(cfg: _FvCfgNode, full_key: str) -> Tuple[bool, Any]:
    node: Any = cfg
    for part in full_key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node


def closest_key(cfg: _FvCfgNode, full_key: str) -> str:
    """Return the known key closest to ``full_key`` (empty string when none is close)."""
    matches = difflib.get_close_matches(full_key, _all_keys(cfg), n=1, cutoff=0.6)
    return matches[0] if matches else ""


class CfgNode(_FvCfgNode):
    """fvcore's config node with checked merges (see the module docstring)."""

    # Patterns of keys that may be new (release keys we do not know the default of).
    TOLERATED_NEW_KEYS: Tuple[str, ...] = ()

    def _check_key(self, full_key: str, value: Any, where: str) -> Any:
        """Raise ``ConfigKeyError`` for an unknown key; return the value to merge."""
        found, default = _lookup(self, full_key)
        if not found:
            if self._tolerated(full_key):
                return value  # added when merged (see _merge_checked)
            hint = closest_key(self, full_key)
            msg = f"{where}: unknown config key '{full_key}'"
            if hint:
                msg += f" (did you mean '{hint}'?)"
            raise ConfigKeyError(msg)
        if isinstance(default, _FvCfgNode) and not isinstance(value, dict):
            raise ConfigKeyError(
                f"{where}: '{full_key}' is a section; give its keys, not the value {value!r}"
            )
        if full_key in _SCALAR_TO_LIST_KEYS and isinstance(value, (int, float)):
            return [value]
        return value

    def _tolerated(self, full_key: str) -> bool:
        return any(fnmatch.fnmatch(full_key, p) for p in self.TOLERATED_NEW_KEYS)

    def _checked_dict(self, raw: Dict[str, Any], where: str) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for full_key, value in _flatten(raw):
            value = self._check_key(full_key, value, where)
            node = out
            parts = full_key.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
        return out

    def _load_checked(self, filename: str, chain: Tuple[str, ...] = ()) -> Dict[str, Any]:
        filename = os.path.expanduser(filename)
        if filename in chain:
            raise ConfigKeyError(f"{filename}: _BASE_ cycle: {' -> '.join(chain + (filename,))}")
        try:
            with open(filename) as f:
                raw = yaml.safe_load(f) or {}
        except FileNotFoundError:
            where = f" (the _BASE_ of {chain[-1]})" if chain else ""
            raise FileNotFoundError(f"config file not found: {filename}{where}") from None
        except yaml.YAMLError as e:
            raise ValueError(f"{filename}: not valid YAML: {e}") from None
        if not isinstance(raw, dict):
            raise ValueError(f"{filename}: a config file must be a mapping of keys")
        bases = raw.pop(BASE_KEY, None)
        own = self._checked_dict(raw, filename)
        if bases is None:
            return own
        merged: Dict[str, Any] = {}
        for base in bases if isinstance(bases, list) else [bases]:
            if not os.path.isabs(os.path.expanduser(base)):
                base = os.path.join(os.path.dirname(filename), base)
            _deep_update(merged, self._load_checked(base, chain + (filename,)))
        _deep_update(merged, own)
        return merged

    def merge_from_file(self, cfg_filename: str, allow_unsafe: bool = False) -> None:
        """Merge a YAML file (and its ``_BASE_`` chain) into this config.

        Raises:
            ConfigKeyError: an unknown key, naming it, the file and the closest known key.
            ValueError: a value of the wrong type, naming the key and the file.
        """
        loaded = self._load_checked(cfg_filename)
        self._merge_checked(loaded, cfg_filename)

    def merge_from_list(self, cfg_list: List[str]) -> None:
        """Merge ``[KEY, VALUE, ...]`` overrides, checking each key like a file's."""
        if len(cfg_list) % 2 != 0:
            raise ValueError(
                f"overrides must be KEY VALUE pairs; got an odd number of items: {cfg_list}"
            )
        for key, value in zip(cfg_list[0::2], cfg_list[1::2]):
            value = self._check_key(key, self._decode_cfg_value(value), "command line")
            nested: Dict[str, Any] = {}
            node = nested
            parts = key.split(".")
            for part in parts[:-1]:
                node = node.setdefault(part, {})
            node[parts[-1]] = value
            self._merge_checked(nested, "command line")

    def _merge_checked(self, loaded: Dict[str, Any], where: str) -> None:
        """Merge an already checked dict; tolerated new keys are created first."""
        for full_key, value in _flatten(loaded):
            if not _lookup(self, full_key)[0] and self._tolerated(full_key):
                parent, _, leaf = full_key.rpartition(".")
                node = self
                for part in parent.split(".") if parent else []:
                    node = node[part]
                node[leaf] = value
                TOLERATED_SEEN.add(full_key)
        try:
            self.merge_from_other_cfg(type(self)(loaded))
        except ValueError as e:
            raise ValueError(f"{where}: {e}") from None
        except KeyError as e:
            raise ConfigKeyError(f"{where}: {e}") from None


def _deep_update(dst: Dict[str, Any], src: Dict[str, Any]) -> None:
    for k, v in src.items():
        if isinstance(v, dict) and isinstance(dst.get(k), dict):
            _deep_update(dst[k], v)
        else:
            dst[k] = v
