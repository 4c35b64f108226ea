"""The ``edge`` command line explains itself (issue 15, items 5 and 6)."""

from __future__ import annotations

import argparse

import pytest

from edge.cli.main import RUN
from edge.cli.parser import build_parser


def _commands(
    parser: argparse.ArgumentParser, prefix: str = ""
) -> list[tuple[str, argparse.ArgumentParser]]:
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found.append((f"{prefix}{name}", sub))
                found += _commands(sub, f"{prefix}{name} ")
    return found


COMMANDS = _commands(build_parser())


def test_every_command_is_listed() -> None:
    names = {name for name, _ in COMMANDS}
    assert {"serve", "push", "publish", "diff", "sites", "token new", "demo"} <= names


@pytest.mark.parametrize(("name", "parser"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_command_has_a_description_and_an_example(
    name: str, parser: argparse.ArgumentParser
) -> None:
    assert parser.description and len(parser.description) > 20, name
    assert parser.epilog and parser.epilog.startswith("examples:\n  edge "), name
    text = parser.format_help()
    assert "examples:" in text


@pytest.mark.parametrize(("name", "parser"), COMMANDS, ids=[n for n, _ in COMMANDS])
def test_every_option_and_argument_has_help(name: str, parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
            continue
        if action.help == argparse.SUPPRESS:
            continue
        assert action.help, (name, action.dest)
    assert "FROM_" not in parser.format_help()


def test_every_runnable_command_runs_something() -> None:
    for name, parser in COMMANDS:
        run = parser.get_default("run")
        if run is not None:
            assert run in RUN, name


def _token(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["token", "new", *argv])


def test_token_sites_comma_separated_and_repeated() -> None:
    args = _token("--name", "bot", "--sites", "acme,blog", "--sites", "shop")
    assert [s for group in args.sites for s in group] == ["acme", "blog", "shop"]
    assert _token("--name", "ops", "--all-sites").all_sites


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["--name", "bot"], "one of the arguments --sites --all-sites is required"),
        (["--sites", "acme"], "the following arguments are required: --name"),
        (["--name", "bot", "--sites", "acme", "--all-sites"], "not allowed with argument"),
        (["--name", "bot", "--sites", "*"], "for every site, use --all-sites"),
        (["--name", "bot", "--sites", "Acme Site"], "'Acme Site' is not a site id"),
        (["--name", "bot", "--sites", ","], "expected site ids"),
    ],
)
def test_token_new_refuses_what_would_grant_the_wrong_sites(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        _token(*argv)
    assert exited.value.code == 2
    assert says in capsys.readouterr().err
