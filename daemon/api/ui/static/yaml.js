// A YAML editor of our own: a textarea over a highlighted copy of its text, with line
// numbers and problems marked at their lines. Highlighting is per line and builds DOM
// nodes (never HTML strings), so whatever the YAML holds stays text.
import { h } from "./podium.js";

const KEY = /^(\s*)(- +)?((?:"[^"]*"|'[^']*'|[^\s#'"{}[\],][^#:]*?)\s*)(:)(?=\s|$)/;
const TOKEN = /(\{\{.*?\}\}|\{%.*?%\})|("(?:[^"\\]|\\.)*"?|'(?:[^']|'')*'?)|(\s#.*$)|(\b(?:true|false|null|yes|no|on|off)\b)|(-?\b\d+(?:\.\d+)?\b)/gi;

function expressions(text) {
  return text.split(/(\{\{.*?\}\}|\{%.*?%\})/).map((part, i) =>
    (i % 2 ? h("span", { class: "y-expr" }, part) : part));
}

function highlightValue(text) {
  const parts = [];
  let last = 0;
  for (const match of text.matchAll(TOKEN)) {
    if (match.index > last) parts.push(text.slice(last, match.index));
    const kind = match[1] ? "expr" : match[2] ? "str" : match[3] ? "comment"
      : match[4] ? "lit" : "num";
    parts.push(h("span", { class: `y-${kind}` }, kind === "str" ? expressions(match[0]) : match[0]));
    last = match.index + match[0].length;
  }
  if (last < text.length) parts.push(text.slice(last));
  return parts;
}

export function highlightLine(line) {
  if (/^\s*#/.test(line)) return [h("span", { class: "y-comment" }, line)];
  if (/^(---|\.\.\.)\s*$/.test(line)) return [h("span", { class: "y-doc" }, line)];
  const key = KEY.exec(line);
  if (key) {
    const [whole, indent, dash, name, colon] = key;
    return [indent, dash ? h("span", { class: "y-dash" }, dash) : "",
      h("span", { class: "y-key" }, name), h("span", { class: "y-punct" }, colon),
      ...highlightValue(line.slice(whole.length))];
  }
  const item = /^(\s*)(- )(.*)$/.exec(line);
  if (item) {
    return [item[1], h("span", { class: "y-dash" }, item[2]), ...highlightValue(item[3])];
  }
  return highlightValue(line);
}

export function createEditor(container, text) {
  const gutter = h("div", { class: "gutter", "aria-hidden": "true" });
  const code = h("code");
  const pre = h("pre", { class: "highlight", "aria-hidden": "true" }, code);
  const area = h("textarea", {
    class: "source", spellcheck: "false", autocapitalize: "off", autocomplete: "off",
    wrap: "off", "aria-label": "Flow YAML",
  });
  area.value = text;
  container.replaceChildren(h("div", { class: "editor" }, gutter, h("div", { class: "code" }, pre, area)));
  let problems = new Map();

  function render() {
    const lines = area.value.split("\n");
    code.replaceChildren(...lines.map((line, i) => h("span", {
      class: problems.has(i + 1) ? "line error-line" : "line",
    }, ...highlightLine(line))));
    gutter.replaceChildren(...lines.map((_, i) => {
      const messages = problems.get(i + 1);
      return h("div", {
        class: messages ? "ln error" : "ln", "data-line": i + 1,
        title: messages ? messages.join("\n") : null,
      }, String(i + 1));
    }));
    sync();
  }

  function sync() {
    pre.scrollTop = area.scrollTop;
    pre.scrollLeft = area.scrollLeft;
    gutter.scrollTop = area.scrollTop;
  }

  area.addEventListener("input", render);
  area.addEventListener("scroll", sync);
  area.addEventListener("keydown", (event) => {
    if (event.key !== "Tab" || event.shiftKey || event.ctrlKey || event.metaKey) return;
    event.preventDefault();
    area.setRangeText("  ", area.selectionStart, area.selectionEnd, "end");
    render();
  });
  render();

  return {
    get value() { return area.value; },
    set value(next) { area.value = next; render(); },
    textarea: area,
    setProblems(list) {
      problems = new Map();
      for (const problem of list) {
        const line = Math.max(1, problem.line || 1);
        problems.set(line, [...(problems.get(line) || []), problem.message]);
      }
      render();
    },
    goTo(line) {
      const lines = area.value.split("\n");
      const offset = lines.slice(0, line - 1).reduce((n, l) => n + l.length + 1, 0);
      area.focus();
      area.setSelectionRange(offset, offset + (lines[line - 1] || "").length);
      const height = parseFloat(getComputedStyle(area).lineHeight) || 18;
      area.scrollTop = Math.max(0, (line - 4) * height);
      sync();
    },
  };
}
