"""Text from the data never becomes markup: escaping for Markdown, HTML and Slack.

Column names, category values, labels, file names and expectation arguments all come from
whoever writes the data or the suite. Every artifact that renders text (the Markdown summaries
and gate report in the KFP UI, the HTML pages, the webhook's Slack ``mrkdwn``) passes such text
through one of these functions, so a ``<script>``, a ``[link](javascript:…)``, a ``|`` that
would split a table cell or a Slack ``<!channel>`` stays literal text.
"""

from __future__ import annotations

import html
import re

# Markdown: HTML-significant characters as entities (raw HTML and autolinks), every other
# character CommonMark could read as syntax backslash-escaped, line breaks folded (a new line
# could start a heading, a list or a table row).
# ":" and "@" too, and the dot of "www.": GFM renderers (markdown-to-jsx in the KFP UI among them)
# turn bare http://…, www.… and user@host text into links.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+!|~:@])")
_BARE_WWW = re.compile(r"(?i)\b(www)\.")
_LINE_BREAKS = re.compile(r"[\r\n\u2028\u2029]+")


def markdown_text(value: object) -> str:
    """``value`` as inline Markdown text that renders exactly as the characters it holds."""
    text = _LINE_BREAKS.sub(" ", str(value))
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _BARE_WWW.sub(r"\1\\.", _MARKDOWN_SPECIAL.sub(r"\\\1", text))


def html_text(value: object) -> str:
    return html.escape(str(value), quote=True)


def slack_text(value: object) -> str:
    """Slack mrkdwn: ``&``, ``<`` and ``>`` are the control characters (links, mentions)."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
