"""The README's command lines work as written: every ``python train.py`` line of its code blocks
composes and passes train.py's config checks, and every override it shows inline parses."""

import re
import shlex

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException

from genlab.config import compose_train
from genlab.train import check_config
from tests.conftest import ROOT

PLACEHOLDER = re.compile(r"<[^>]+>")  # <run>, <coarse run>: the reader fills these in
OVERRIDE = re.compile(r"^[+~]{0,2}[A-Za-z_][\w./@-]*=")
README = (ROOT / "README.md").read_text()
PARSER = OverridesParser.create()


def train_commands(text: str) -> list[tuple[int, str]]:
    """(line number, command) of each ``python train.py`` line in the shell code blocks, continuation
    lines joined and comments dropped."""
    commands, fence, pending = [], None, ""
    for number, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("```"):  # fences may be indented (in a list item)
            fence = line.lstrip()[3:].strip() if fence is None else None
            continue
        if fence not in ("bash", "sh", ""):
            continue
        command = f"{pending} {line.split(' #')[0].strip()}".strip()
        pending = command[:-1] if command.endswith("\\") else ""
        if not pending and command.startswith("python train.py"):
            commands.append((number, command))
    return commands


def as_single_run(command: str) -> list[str]:
    """The overrides of ``command`` with placeholders and $HOME filled in and each sweep (``-m``) at its first value."""
    filled = PLACEHOLDER.sub("/tmp/run", command.replace("$HOME", "/home/user"))
    overrides = []
    for word in shlex.split(filled)[2:]:
        if word in ("-m", "--multirun"):
            continue
        parsed = PARSER.parse_override(word)
        if parsed.is_sweep_override():
            word = f"{parsed.get_key_element()}={next(iter(parsed.sweep_string_iterator()))}"
        overrides.append(word)
    return overrides


COMMANDS = train_commands(README)


def test_readme_shows_the_recipes_commands():
    commands = " ".join(command for _, command in COMMANDS)
    for expected in ("experiment=stylegan2_shapes", "model=cyclegan data=horse2zebra", "-m seed=1,2"):
        assert expected in commands


@pytest.mark.parametrize("command", [c for _, c in COMMANDS], ids=[f"README.md:{n}" for n, _ in COMMANDS])
def test_readme_train_command_composes(command, tmp_path):
    cfg = compose_train(as_single_run(command), output_dir=tmp_path)
    check_config(cfg)


def inline_overrides(text: str) -> list[str]:
    """``key=value`` words of the README's inline code spans outside code blocks (Python calls skipped)."""
    prose = re.sub(r"^ *```.*?^ *```", "", text, flags=re.S | re.M)
    words = []
    for span in re.findall(r"`([^`]+)`", prose):  # a span may wrap onto the next line
        span = span.replace("\n", " ")
        if "(" in span:  # model.sample(n, top_k=20): Python, not an override
            continue
        filled = PLACEHOLDER.sub("X", span)
        words += [w for w in shlex.split(filled) if OVERRIDE.match(w) and w.isascii()]
    return words


def test_readme_inline_overrides_parse():
    words = inline_overrides(README)
    assert len(words) > 100
    unparsable = []
    for word in words:
        try:
            PARSER.parse_override(word)
        except HydraException as error:  # the grammar's error for what the shell hands over as written
            unparsable.append(f"{word}: {str(error).splitlines()[0]}")
    assert not unparsable, "README overrides Hydra cannot parse:\n" + "\n".join(unparsable)
