// Parses every math span of a Markdown file with KaTeX (its real parser and renderer) and exits
// non-zero on the first kind of failure: a span KaTeX rejects, or a `$` outside the two math
// syntaxes the notes use (```math fences for display math, $`…`$ for inline math), which a
// Markdown renderer would show as text. Usage: node check.mjs FILE.md
import { readFileSync } from "node:fs";
import katex from "katex";

const path = process.argv[2];
if (!path) {
  console.error("usage: node check.mjs FILE.md");
  process.exit(2);
}
const text = readFileSync(path, "utf8");
const lineOf = (index) => text.slice(0, index).split("\n").length;

const spans = [];
let rest = text;
const blank = (match) => match.replace(/[^\n]/g, " ");
// A fence may be indented (inside a list item); its closing fence has the same indent.
for (const m of text.matchAll(/^( *)```math\n([\s\S]*?)^\1```$/gm)) {
  spans.push({ tex: m[2], display: true, line: lineOf(m.index) + 1 });
}
rest = rest.replace(/^( *)```math\n[\s\S]*?^\1```$/gm, blank);
rest = rest.replace(/^( *)```[\s\S]*?^\1```$/gm, blank); // other fenced blocks (mermaid) are not math
for (const m of rest.matchAll(/\$`([^`]+)`\$/g)) {
  spans.push({ tex: m[1], display: false, line: lineOf(m.index) });
}
rest = rest.replace(/\$`[^`]+`\$/g, blank).replace(/`[^`\n]*`/g, blank);

const errors = [];
for (const span of spans) {
  try {
    katex.renderToString(span.tex, {
      displayMode: span.display,
      throwOnError: true,
      strict: "error",
      trust: false,
    });
  } catch (err) {
    errors.push(`${path}:${span.line}: ${err.message}\n    ${span.tex.split("\n").join("\n    ")}`);
  }
}
for (const m of rest.matchAll(/\$/g)) {
  errors.push(`${path}:${lineOf(m.index)}: a '$' outside $\`…\`$ and \`\`\`math (not math here)`);
}
const display = spans.filter((s) => s.display).length;
if (errors.length) {
  console.error(errors.join("\n"));
  console.error(`${errors.length} error(s) in ${spans.length} math spans of ${path}`);
  process.exit(1);
}
if (spans.length === 0) {
  console.error(`${path}: no math found; expected \`\`\`math blocks and $\`…\`$ spans`);
  process.exit(1);
}
console.log(`KaTeX ${katex.version} parsed ${display} display and ${spans.length - display} inline math spans of ${path}`);
