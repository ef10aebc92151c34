"""The config: every key with its type, default, meaning, valid range and the entry points that use it (``GROUPS``),
YAML files (``_base_: FILE`` includes a file it overrides), and ``--key value`` / ``--key=value`` command lines.
Unknown keys are errors, never ignored.

    python -m src.config CONFIG [--key value ...] --get KEY     # print one resolved value (for shell scripts)
    python -m src.config CONFIG [--key value ...] --dump        # print the whole resolved config as YAML
    python -m src.config --markdown > docs/configuration.md     # the reference page, generated from GROUPS
"""
from __future__ import annotations

import argparse
import difflib
import sys
import textwrap
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml

from tinynet_ms.cli import EXIT_USAGE, UsageError
from tinynet_ms.kernels import CPU_KERNELS
from tinynet_ms.records import RecordError, in_bounds, read_text_bounded, shown
from tinynet_ms.train.schedule import LR_SCALINGS


# The model-zoo entry points. Each lists the config keys it uses in its --help (a key's ``commands``) and accepts
# the others too: the shell scripts pass one set of overrides to several of them, and a YAML file holds every key.
TRAIN, EVAL, EXPORT, PREDICT = "train.py", "eval.py", "export.py", "predict.py"
ENTRY_POINTS = (TRAIN, EVAL, EXPORT, PREDICT)


@dataclass(frozen=True)
class Key:
    default: Any  # its type is the key's type
    help: str
    choices: tuple[str, ...] = ()
    bounds: str = ""  # an interval such as "[1, inf)" or "(0, 1]": checked when parsed, shown in --help
    commands: tuple[str, ...] = ()  # the entry points whose run reads it; () in a group's table = the group's


def _group(commands: tuple[str, ...], keys: dict[str, Key]) -> dict[str, Key]:
    """A group's keys, those naming no entry points of their own used by ``commands`` (the group's usual ones),
    so that each key's users are written once: in its group's call or on the key."""
    return {name: key if key.commands else replace(key, commands=commands) for name, key in keys.items()}


# Grouped as docs/configuration.md (python -m src.config --markdown) and --help. Defaults are the library's
# (create_model's) where it has one; the paper's training recipe is configs/base.yaml.
GROUPS: dict[str, dict[str, Key]] = {
    "model": _group(ENTRY_POINTS, {
        "model": Key("tinynet_a", "tinynet_a..tinynet_e, or tinynet with r/w/d"),
        "r": Key(1.0, "resolution multiplier (model: tinynet)", bounds="(0, 4]"),
        "w": Key(1.0, "width multiplier (model: tinynet)", bounds="(0, 4]"),
        "d": Key(1.0, "depth multiplier (model: tinynet)", bounds="(0, 4]"),
        "num_classes": Key(1000, "number of classes", bounds="[1, inf)"),
        "image_size": Key(0, "input resolution; 0 = the model's own (its record: int(224 r))", bounds="[0, inf)"),
        "pretrained_checkpoint": Key("", "start from these weights (.ckpt, timm .pth/.safetensors)",
                                     commands=(TRAIN,)),
        "pretrained": Key(False, "the official ImageNet weights of model (tinynet_a..e), downloaded on first use: "
                                 "training starts from them, eval/export/predict run them; a pretrained_checkpoint "
                                 "(train) / checkpoint_path (eval, export, predict) wins"),
        "features_only": Key(False, "the backbone (feature maps at out_indices, no classifier head)",
                             commands=(EXPORT,)),
        "out_indices": Key("1,2,3,4", "features_only: comma-separated feature levels 0..4 (reductions 2, 4, 8, "
                                      "16, 32)", commands=(EXPORT,)),
    }),
    "device": _group(ENTRY_POINTS, {
        "device_target": Key("Ascend", "the device MindSpore runs on", ("Ascend", "GPU", "CPU")),
        "device_id": Key(0, "device of a standalone run", bounds="[0, inf)"),
        "mode": Key("graph", "execution mode", ("graph", "pynative")),
        "cpu_kernels": Key("auto", "tinynet_ms.kernels' CPU cells: auto = on a CPU when they compile, on = them or "
                                   "an error, off = MindSpore's stock cells (create_model's None/True/False)",
                           tuple(CPU_KERNELS), commands=(TRAIN, EVAL, PREDICT)),
        "deterministic": Key(False, "MindSpore's deterministic kernels and collectives (Ascend/GPU; slower): "
                                    "identical runs give identical numbers", commands=(TRAIN, EVAL)),
        "amp_level": Key("auto", "mixed precision; auto = O2 on Ascend/GPU, O0 on CPU",
                         ("O0", "O1", "O2", "O3", "auto"), commands=(TRAIN,)),
        "loss_scale": Key(1024.0, "initial (dynamic) or fixed loss scale", bounds="(0, inf)", commands=(TRAIN,)),
        "loss_scale_mode": Key("auto", "auto = dynamic on Ascend/GPU, fixed on CPU", ("dynamic", "fixed", "auto"),
                               commands=(TRAIN,)),
        "data_sink": Key("auto", "MindSpore's data sink: batches queued on the device, up to log_interval steps per "
                                 "host call; auto = on Ascend/GPU, off on CPU (MindSpore has none there)",
                         ("on", "off", "auto"), commands=(TRAIN,)),
    }),
    "data": _group((TRAIN,), {
        "data_path": Key("", "dataset root with train/ and val/", commands=(TRAIN, EVAL)),
        "batch_size": Key(128, "per-device batch size (train, eval, predict)", bounds="[1, inf)",
                          commands=(TRAIN, EVAL, PREDICT)),
        "num_parallel_workers": Key(8, "data pipeline workers per device", bounds="[1, inf)",
                                    commands=(TRAIN, EVAL, PREDICT)),
        "auto_augment": Key("rand-m9-mstd0.5", "timm RandAugment string; none = off"),
        "re_prob": Key(0.2, "random erasing probability", bounds="[0, 1]"),
        "hflip_prob": Key(0.5, "horizontal flip probability", bounds="[0, 1]"),
        "min_crop_scale": Key(0.08, "lower area scale of RandomResizedCrop", bounds="(0, 1]"),
        "crop_pct": Key(0.0, "eval preprocessing: center-crop fraction of the resized image; 0 = the model's own",
                        bounds="[0, 1]", commands=ENTRY_POINTS),
    }),
    "optimisation": _group((TRAIN,), {
        "epochs": Key(450, "training epochs", bounds="[1, inf)"),
        "lr": Key(0.048, "peak LR; with lr_scaling linear, the LR for lr_reference_batch images per step",
                  bounds="(0, inf)"),
        "lr_scaling": Key("none", "linear = lr x global batch / lr_reference_batch (global = devices x batch_size; "
                                  "the ImageNet configs); none = lr as given", LR_SCALINGS),
        "lr_reference_batch": Key(1024, "the global batch lr is meant for (lr_scaling linear)", bounds="[1, inf)"),
        "warmup_epochs": Key(3.0, "linear warmup epochs", bounds="[0, inf)"),
        "warmup_lr": Key(1e-6, "LR at step 0", bounds="[0, inf)"),
        "decay_epochs": Key(2.4, "step decay period in epochs", bounds="(0, inf)"),
        "decay_rate": Key(0.97, "step decay factor", bounds="(0, 1]"),
        "weight_decay": Key(1e-5, "L2 on conv/dense weights (not BN, not bias)", bounds="[0, inf)"),
        "momentum": Key(0.9, "RMSProp momentum", bounds="[0, 1)"),
        "rmsprop_decay": Key(0.9, "RMSProp mean-square decay", bounds="[0, 1)"),
        "opt_eps": Key(1e-3, "RMSProp epsilon (TF-style, inside the sqrt)", bounds="(0, inf)"),
        "label_smoothing": Key(0.1, "label smoothing", bounds="[0, 1)"),
        "drop_rate": Key(0.2, "dropout before the classifier", bounds="[0, 1)"),
        "drop_path_rate": Key(0.0, "stochastic depth rate of the last block (the recipe: 0.2)", bounds="[0, 1)"),
        "ema_decay": Key(0.9999, "EMA of the weights; 0 = off", bounds="[0, 1)"),
        "freeze_backbone": Key(False, "train the classifier only (a linear probe): every other weight and the "
                                      "BatchNorm statistics stay as loaded, drop-path off"),
    }),
    "run": _group((TRAIN,), {
        "seed": Key(42, "random seed (data order, augmentation, dropout, init)"),
        "output_dir": Key("output", "where checkpoints, metrics and logs go (eval: its logs and the dataset "
                                    "index cache)", commands=(TRAIN, EVAL)),
        "resume": Key("", "'' = fresh, auto = OUTPUT_DIR/checkpoints/last.ckpt if present, or a path"),
        "overwrite": Key(False, "start afresh over an output_dir holding a run's checkpoints (deletes them)"),
        "keep_checkpoint_max": Key(3, "epoch checkpoints kept besides last/best", bounds="[0, inf)"),
        "log_interval": Key(50, "steps between progress lines", bounds="[1, inf)"),
        "eval_interval": Key(1, "epochs between validations", bounds="[1, inf)"),
    }),
    "eval / export": _group((EXPORT,), {
        "checkpoint_path": Key("", "weights to evaluate / export / predict with (.ckpt, timm .pth/.safetensors)",
                               commands=(EVAL, EXPORT, PREDICT)),
        "use_ema": Key(False, "take the EMA weights of a training checkpoint (last.ckpt)",
                       commands=(EVAL, EXPORT, PREDICT)),
        "result_file": Key("", "write {top1, top5, num_samples, ...} JSON here", commands=(EVAL,)),
        "file_name": Key("tinynet", "output file name without extension"),
        "file_format": Key("MINDIR", "file format", ("MINDIR", "ONNX", "AIR")),
        "export_batch_size": Key(1, "the exported model's fixed batch (export.py also takes --batch_size)",
                                 bounds="[1, inf)"),
        "dynamic_batch": Key(False, "a symbolic batch axis instead of the fixed batch (ONNX, MINDIR); re-load "
                                    "checked at export_batch_size and export_batch_size + 6"),
    }),
    "predict": _group((PREDICT,), {
        "topk": Key(5, "the most probable classes listed per image", bounds="[1, inf)"),
        "output": Key("", "also write the predictions here: .csv (a row per image) or .json"),
        "model_path": Key("", "run this exported .mindir/.onnx instead of the checkpoint (its sidecar "
                              "MODEL_PATH.json gives the preprocessing and class names)"),
    }),
}
KEYS: dict[str, Key] = {name: key for group in GROUPS.values() for name, key in group.items()}
BASE_KEY = "_base_"  # in a YAML file: the file (relative to this one) whose values this one overrides


class ConfigError(UsageError):
    pass


def _coerce(name: str, value: Any, source: str) -> Any:
    """``value`` (YAML or command-line text) as key ``name``'s type, checked against its choices and bounds."""
    key = KEYS[name]
    default = key.default
    try:
        if isinstance(default, bool):
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError(value)
                value = value.lower() in ("true", "1", "yes")
            elif not isinstance(value, (bool, int)):
                raise ValueError(value)
            value = bool(value)
        elif isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise ValueError(value)  # YAML lists/maps, and true/false where a number or a name is meant
        elif isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            value = int(value)
        elif isinstance(default, float):
            value = float(value)
        else:
            value = str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"config key '{name}' ({source}) expects {type(default).__name__}, got {shown(value)}") \
            from None
    if key.bounds and not in_bounds(value, key.bounds):
        raise ConfigError(f"config key '{name}' ({source}) must be in {key.bounds}, got {shown(value)}")
    if key.choices and value not in key.choices:
        match = {c.lower(): c for c in key.choices}.get(value.lower())  # Ascend/ascend, onnx/ONNX
        if match is None:
            raise ConfigError(f"config key '{name}' ({source}) must be one of {', '.join(key.choices)}, got "
                              f"{shown(value)}")
        value = match
    return value


def _unknown(name: str, source: str) -> ConfigError:
    close = difflib.get_close_matches(name, KEYS, n=3, cutoff=0.7)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    return ConfigError(f"unknown config key '{name}' ({source}){hint} Known keys: {', '.join(KEYS)}")


def _type_name(key: Key) -> str:
    return "|".join(key.choices) if key.choices else type(key.default).__name__.upper()


def _shown_default(key: Key) -> str:
    """The default as a user would write it in YAML or on the command line ('' for the empty string)."""
    if isinstance(key.default, bool):
        return str(key.default).lower()
    return "''" if key.default == "" else str(key.default)


def keys_of(command: str) -> dict[str, Key]:
    """The config keys entry point ``command`` (train.py, ...) reads, in the order of ``GROUPS``."""
    return {name: key for name, key in KEYS.items() if command in key.commands}


class CommandLine:
    """``--config_path`` and one ``--key`` per config key (grouped, with type, default and help in ``--help``).

    ``prog`` names the command: for an entry point (``ENTRY_POINTS``) ``--help`` lists the keys it reads, for any
    other program (the scripts' pre-launch check) every key. Every key is accepted either way: a YAML file holds
    them all, and the shell scripts pass one set of overrides to several commands. ``aliases`` maps another option
    name onto a key on this command (export.py: ``batch_size`` → ``export_batch_size``); the aliased name then no
    longer means its own key there. Values stay text here: ``load_config`` types them with the same rules as YAML
    values, so both report errors alike. ``positional`` names the words a command takes besides its options
    (predict.py: ``IMAGE_OR_DIR``; ``parse_all``).
    """

    def __init__(self, prog: str, description: str = "", aliases: dict[str, str] | None = None,
                 positional: str = "") -> None:
        self.aliases, self.positional = dict(aliases or {}), positional
        listed = keys_of(prog) if prog in ENTRY_POINTS else KEYS
        words = f" [--] {positional} [{positional} ...]" if positional else ""
        scope = (f"Listed: the keys {prog} uses; it accepts every other config key too (docs/configuration.md), "
                 f"so that one set of overrides can serve several commands. ") if listed is not KEYS else ""
        self.parser = argparse.ArgumentParser(
            prog=prog, description=description, formatter_class=argparse.RawDescriptionHelpFormatter,
            usage=f"%(prog)s [--config_path YAML] [--key value | --key=value ...]{words}", allow_abbrev=False,
            epilog=textwrap.fill(f"Values: --key value or --key=value. {scope}Exit codes: 0 ok, 1 bad input file "
                                 f"or failed run, 2 usage or config error.", 100))
        self.parser.add_argument("--config_path", metavar="YAML",
                                 help="config file (configs/*.yaml); the options below override its keys")
        for group, keys in GROUPS.items():
            shown = [name for name in keys if name in listed and name not in self.aliases]
            if not shown:
                continue
            section = self.parser.add_argument_group(f"{group} keys")
            for name in shown:
                key = keys[name]
                flags = [f"--{name}"] + [f"--{a}" for a, target in self.aliases.items() if target == name]
                within = f"; in {key.bounds}" if key.bounds else ""
                section.add_argument(*flags, dest=name, default=argparse.SUPPRESS, metavar=_type_name(key),
                                     help=f"{key.help} (default: {_shown_default(key)}{within})")
        self.names = {"config_path", *self.aliases, *(k for k in KEYS if k not in self.aliases)}

    def parse(self, args: list[str]) -> tuple[str | None, dict[str, Any]]:
        """(config_path, {key: typed value}); an unknown key, a key without a value or a stray word, a wrong type
        or value is a ConfigError naming the option as typed."""
        config_path, values, _ = self.parse_all(args)
        return config_path, values

    def parse_all(self, args: list[str]) -> tuple[str | None, dict[str, Any], list[str]]:
        """``parse``, plus the words that are neither an option nor its value: the positional arguments of a
        command that takes them (after ``--`` every word is one: file names starting with --), else an error."""
        if "-h" in args or "--help" in args:
            self.parser.print_help()
            raise SystemExit(0)
        config_path, values, words, i = None, {}, [], 0
        while i < len(args):  # by hand, not argparse: it takes "-1e-6" for an option and names no key in errors
            arg = args[i]
            if self.positional and arg == "--":
                words += args[i + 1:]
                break
            if not arg.startswith("--") or arg == "--":
                if not self.positional:
                    raise ConfigError(f"expected --key value, got '{arg}'")
                words.append(arg)
                i += 1
                continue
            name, has_value, value = arg[2:].partition("=")
            if name not in self.names:
                raise _unknown(name, f"--{name}")
            if not has_value:
                if i + 1 == len(args) or args[i + 1].startswith("--"):
                    raise ConfigError(f"--{name} needs a value")
                i, value = i + 1, args[i + 1]
            i += 1
            if name == "config_path":
                config_path = value
            else:
                key = self.aliases.get(name, name)
                values[key] = _coerce(key, value, f"--{name}")
        return config_path, values, words


def parse_overrides(args: list[str]) -> dict[str, str]:
    """``--key value`` pairs (also ``--key=value``) → dict; anything else is an error."""
    config_path, values = CommandLine("tinynet").parse(args)
    if config_path is not None:
        raise ConfigError("--config_path is not an override here")
    return values


MAX_CONFIG_BYTES = 1 << 20  # a config is a flat mapping of ~60 keys (a few kB): anything larger is not one


class _ConfigLoader(yaml.SafeLoader):
    """YAML's safe subset without aliases (``*name``). A config is a flat mapping of scalar keys, so an alias has
    no use in one, while a few nested ones expand to billions of nodes (the "billion laughs"): refusing every alias
    is simpler and surer than bounding the expansion."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in a config: write the "
                                              "value itself", self.peek_event().start_mark)
        return super().compose_node(parent, index)


def _yaml_problem(exc: Exception) -> str:
    """What is wrong with a YAML text, in a few words and where (one line)."""
    if isinstance(exc, RecursionError):
        return "nested too deeply"
    mark = getattr(exc, "problem_mark", None)
    if isinstance(exc, yaml.MarkedYAMLError) and mark is not None:
        return f"{exc.problem} at line {mark.line + 1}, column {mark.column + 1}"
    return " ".join(str(exc).split())[:200]


def not_a_file(path: str | Path) -> str:
    """Why ``path``, which a key names as a file, is not one: 'is a folder, not a file' or 'does not exist'."""
    return "is a folder, not a file" if Path(path).is_dir() else "does not exist"


def _read_yaml(path: Path, chain: tuple[Path, ...] = ()) -> dict[str, tuple[Any, str]]:
    """{key: (value, file it came from)} of ``path`` on top of its ``_base_`` files."""
    if not path.is_file():
        raise ConfigError(f"config file {path} {not_a_file(path)}"
                          + (f" (the {BASE_KEY} of {chain[-1]})" if chain else ""))
    if path.resolve() in chain:
        raise ConfigError(f"{path}: {BASE_KEY} includes itself ({' -> '.join(map(str, chain + (path,)))})")
    fix = "fix it, or give another config"
    try:
        data = yaml.load(read_text_bounded(path, fix, MAX_CONFIG_BYTES), _ConfigLoader) or {}
    except RecordError as exc:  # too big, not UTF-8
        raise ConfigError(str(exc)) from None
    except (yaml.YAMLError, ValueError, RecursionError) as exc:  # ValueError: an integer too long to convert
        raise ConfigError(f"{path} is not a valid config ({_yaml_problem(exc)}); {fix}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must be a mapping of config keys")
    values: dict[str, tuple[Any, str]] = {}
    if BASE_KEY in data:
        base = data.pop(BASE_KEY)
        if not isinstance(base, str) or not base:
            raise ConfigError(f"{path}: {BASE_KEY} must be a file name, got {base!r}")
        values.update(_read_yaml(path.parent / base, chain + (path.resolve(),)))
    for key, value in data.items():
        if key not in KEYS:
            raise _unknown(str(key), str(path))
        values[key] = (value, str(path))
    return values


def load_config(config_path: str | Path | None = None, overrides: list[str] | dict | None = None) -> SimpleNamespace:
    """Defaults ← YAML file (← its ``_base_``) ← command-line overrides, every key checked and typed."""
    values = {k: key.default for k, key in KEYS.items()}
    if config_path:
        for key, (value, source) in _read_yaml(Path(config_path)).items():
            values[key] = _coerce(key, value, source)
    items = parse_overrides(overrides) if isinstance(overrides, list) else dict(overrides or {})
    for key, value in items.items():
        if key not in KEYS:
            raise _unknown(key, f"--{key}")
        values[key] = _coerce(key, value, f"--{key}")
    cfg = SimpleNamespace(**values)
    cfg.config_path = str(config_path or "")
    return cfg


def config_yaml(cfg: SimpleNamespace) -> str:
    """Every key of ``cfg`` as YAML, in the order of ``GROUPS``."""
    return yaml.safe_dump({k: getattr(cfg, k) for k in KEYS}, sort_keys=False)


def save_config(cfg: SimpleNamespace, path: str | Path) -> Path:
    from tinynet_ms.atomic import write_text_atomic

    return write_text_atomic(path, config_yaml(cfg))


MARKDOWN_COMMAND = "python -m src.config --markdown > docs/configuration.md"


def _cell(text: str) -> str:
    """Text for a markdown table cell: a '|' would end the cell."""
    return text.replace("|", "\\|")


def configuration_markdown() -> str:
    """docs/configuration.md: every key of ``GROUPS`` with its type, default, range or choices, meaning and the
    entry points that read it, and each entry point's keys. Generated, so the page cannot drift from the schema
    (tests/test_config.py compares the committed page with this)."""
    lines = [
        "# Configuration keys",
        "",
        f"<!-- Generated from src/config.py (GROUPS) by `{MARKDOWN_COMMAND}`: edit the schema there and "
        "regenerate; tests/test_config.py fails while this page differs from the schema. -->",
        "",
        "Every key can be set in a YAML config (`configs/*.yaml`; `_base_: FILE` includes FILE, whose keys the "
        "including file overrides) and on the command line as `--key value` or `--key=value`, which override the "
        "file. Values from either are checked against the key's type, range and choices; an unknown key is an "
        "error that names it (exit code 2), never ignored.",
        "",
        "The defaults below are the library's (`tinynet_ms.create_model`'s where it has one). The paper's ImageNet "
        "recipe is `configs/base.yaml`, which the variant configs `configs/tinynet_{a..e}.yaml` include; "
        "`configs/demo.yaml` is the CPU demo's. `python -m src.config CONFIG [--key value ...] --dump` prints a "
        "config with every key resolved.",
        "",
        "Each entry point's `--help` lists the keys it reads (the *used by* column). It accepts the other keys "
        "too, and they change nothing there: a YAML file holds every key, and the shell scripts pass one set of "
        "overrides to several commands (`scripts/run_demo.sh` gives its arguments to training and to eval).",
        "",
        "## Keys by command",
        "",
        "| command | keys |",
        "|---|---|",
    ]
    lines += [f"| `{command}` | {', '.join(f'`{name}`' for name in keys_of(command))} |" for command in ENTRY_POINTS]
    for group, keys in GROUPS.items():
        lines += ["", f"## {group}", "", "| key | type | default | range / choices | used by | meaning |",
                  "|---|---|---|---|---|---|"]
        for name, key in keys.items():
            allowed = ", ".join(f"`{c}`" for c in key.choices) if key.choices else key.bounds and f"`{key.bounds}`"
            used_by = ", ".join(f"`{c}`" for c in key.commands)
            lines.append(f"| `{name}` | {type(key.default).__name__} | `{_shown_default(key)}` | {_cell(allowed)} | "
                         f"{used_by} | {_cell(key.help)} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m src.config", allow_abbrev=False,  # --d is a key, not --dump
                                     description="Resolve a config for shell scripts, or write the keys' reference.")
    parser.add_argument("config_path", nargs="?", help="config file (configs/*.yaml); --key value overrides follow")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--get", metavar="KEY", help="print this key's resolved value")
    what.add_argument("--dump", action="store_true", help="print every key's resolved value as YAML")
    what.add_argument("--markdown", action="store_true",
                      help=f"print docs/configuration.md, every key's reference (regenerate: {MARKDOWN_COMMAND})")
    args, rest = parser.parse_known_args(argv)
    if args.markdown:
        if args.config_path or rest:
            parser.error("--markdown takes no config or overrides: the page describes the schema")
        print(configuration_markdown(), end="")
        return 0
    if not args.config_path:
        parser.error("--get and --dump need a CONFIG_PATH")
    try:
        cfg = load_config(args.config_path, rest)
        if args.get is not None and args.get not in KEYS:
            raise _unknown(args.get, "--get")
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(config_yaml(cfg) if args.dump else getattr(cfg, args.get), end="" if args.dump else "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
