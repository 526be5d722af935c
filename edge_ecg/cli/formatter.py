"""The help formatter every subcommand's parser uses (its own module, so that subcommand
modules with nested parsers, as `bridge`, need not import the CLI package that imports them)."""

from __future__ import annotations

import argparse


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless it says nothing (None, False, an empty string) or the
    help text already states it in words ("default: the bundle's")."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "default" in text or action.default in (None, False, "", argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)
