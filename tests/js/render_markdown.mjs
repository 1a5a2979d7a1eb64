// Render Markdown read from stdin to static HTML on stdout, as the Kubeflow Pipelines UI's
// MarkdownViewer renders a Markdown artifact: markdown-to-jsx with disableParsingRawHTML, content
// truncated at 400,000 characters (MAX_MARKDOWN_STR_LENGTH), links through an ExternalLink override
// (rendered here as a plain <a>, which is what it wraps).
import { readFileSync } from "node:fs";
import React from "react";
import { renderToStaticMarkup } from "react-dom/server";
import Markdown from "markdown-to-jsx";

const MAX_MARKDOWN_STR_LENGTH = 50 * 1000 * 8;
const content = readFileSync(0, "utf8").substr(0, MAX_MARKDOWN_STR_LENGTH);
const options = { disableParsingRawHTML: true, overrides: { a: { component: "a" } } };
process.stdout.write(renderToStaticMarkup(React.createElement(Markdown, { options }, content)));
