// The flow editor: CodeMirror 6 (bundled in codemirror.bundle.js) with what the flow's
// JSON Schema knows — completion of task types and of the properties of the task under the
// cursor, documentation on hover — and the server's own validation while typing (the
// messages `podium validate` prints, at their lines), debounced.
import {
  EditorState, EditorView, autocompletion, bracketMatching, closeBrackets,
  closeBracketsKeymap, completionKeymap, defaultHighlightStyle, defaultKeymap, drawSelection,
  foldGutter, foldKeymap, forceLinting, highlightActiveLine, highlightActiveLineGutter,
  highlightSelectionMatches, highlightSpecialChars, history, historyKeymap, hoverTooltip,
  indentOnInput, indentUnit, indentWithTab, keymap, lineNumbers, linter, lintGutter,
  searchKeymap, syntaxHighlighting, yaml,
} from "./codemirror.bundle.js";
import { FlowSchema, describeType, framesAt, lineInfo, typesOf } from "./flowschema.js";
import { api, h } from "./podium.js";

const LINT_DELAY_MS = 350;
let schemaPromise = null;

export function loadSchema() {
  schemaPromise = schemaPromise || api("/api/v1/plugins/schemas/flow").then((doc) => new FlowSchema(doc));
  return schemaPromise;
}

function linesOf(state) {
  const lines = [];
  for (let i = 1; i <= state.doc.lines; i += 1) lines.push(state.doc.line(i).text);
  return lines;
}

// -- completion ------------------------------------------------------------------------

function propertyOption(schema, name, property, required) {
  const doc = property.description || "";
  return {
    label: name,
    type: "property",
    detail: describeType(schema, property) + (required ? " · required" : ""),
    info: doc || undefined,
    boost: required ? 10 : name === "id" || name === "type" ? 20 : 0,
    apply: `${name}: `,
  };
}

function typeOptions(objects) {
  const seen = new Set();
  const options = [];
  for (const object of objects) {
    const [canonical] = typesOf(object);
    if (!canonical || seen.has(canonical)) continue;
    seen.add(canonical);
    options.push({ label: canonical, type: "class", detail: object.title || "",
      info: object.description || undefined });
  }
  return options;
}

function completeAt(schema, context) {
  const { state, pos } = context;
  const line = state.doc.lineAt(pos);
  const before = line.text.slice(0, pos - line.from);
  const lines = linesOf(state);
  const row = line.number - 1;
  const valueMatch = /^(\s*)(-\s+)?([A-Za-z0-9_$][\w.$-]*)\s*:\s+(["']?)([^\s"']*)$/.exec(before);
  if (valueMatch) {
    const indent = valueMatch[1].length + (valueMatch[2] ? valueMatch[2].length : 0);
    const key = valueMatch[3];
    const word = valueMatch[5];
    const frames = framesAt(lines, row, indent);
    let options = [];
    if (key === "type") {
      options = typeOptions(schema.objectsAt(frames, { untyped: true }));
    } else {
      for (const object of schema.objectsAt(frames)) {
        const property = schema.child(object, key);
        if (!property) continue;
        for (const option of schema.alternatives(property)) {
          for (const value of option.enum || []) {
            options.push({ label: String(value), type: "enum" });
          }
          if (option.type === "boolean") options.push({ label: "true", type: "keyword" }, { label: "false", type: "keyword" });
        }
      }
    }
    if (!options.length) return null;
    return { from: pos - word.length, options: dedupe(options), validFor: /^[\w.$-]*$/ };
  }
  const keyMatch = /^(\s*)(-\s+)?([A-Za-z0-9_$-]*)$/.exec(before);
  if (!keyMatch) return null;
  if (!keyMatch[3] && !context.explicit && !keyMatch[2]) return null;
  const indent = keyMatch[1].length + (keyMatch[2] ? keyMatch[2].length : 0);
  const frames = framesAt(lines, row, indent);
  const present = frames.at(-1).keys;
  const options = [];
  for (const object of schema.objectsAt(frames)) {
    const required = new Set([...(object.required || [])]);
    for (const [name, property] of Object.entries(object.properties || {})) {
      if (present.has(name) && present.get(name).row !== row) continue;
      if (property.deprecated) continue;
      options.push(propertyOption(schema, name, property, required.has(name) || property.$required));
    }
  }
  if (!options.length) return null;
  return { from: pos - keyMatch[3].length, options: dedupe(options), validFor: /^[\w$-]*$/ };
}

function dedupe(options) {
  const seen = new Set();
  return options.filter((o) => !seen.has(o.label) && seen.add(o.label));
}

// -- hover -----------------------------------------------------------------------------

function hoverAt(schema, view, pos) {
  const line = view.state.doc.lineAt(pos);
  const info = lineInfo(line.text);
  if (info.blank || !info.key) return null;
  const keyStart = line.from + info.keyIndent;
  const keyEnd = keyStart + info.key.length;
  const lines = linesOf(view.state);
  const frames = framesAt(lines, line.number - 1, info.keyIndent);
  const objects = schema.objectsAt(frames);
  let title = info.key;
  let body = null;
  let type = null;
  if (info.key === "type" && pos > keyEnd) {
    const object = objects.find((o) => typesOf(o).includes(info.value));
    if (!object) return null;
    title = object.title || info.value;
    body = object.description;
    type = info.value;
  } else if (pos >= keyStart && pos <= keyEnd) {
    const property = objects.map((o) => schema.child(o, info.key)).find(Boolean);
    if (!property) return null;
    body = property.description;
    type = describeType(schema, property);
    const resolved = schema.deref(property);
    if (resolved.default !== undefined) type += ` · default ${JSON.stringify(resolved.default)}`;
  } else {
    return null;
  }
  return {
    pos: keyStart,
    end: info.key === "type" && pos > keyEnd ? line.to : keyEnd,
    above: true,
    create() {
      const dom = h("div", { class: "cm-doc" }, h("strong", {}, title),
        type ? h("div", { class: "cm-doc-type mono" }, type) : null,
        body ? h("p", {}, body) : null);
      return { dom };
    },
  };
}

// -- validation ------------------------------------------------------------------------

async function serverProblems(text, extra) {
  const problems = [...extra(text)];
  if (problems.length) return problems;
  const results = await api("/api/v1/flows/validate", {
    method: "POST", body: text, type: "application/x-yaml",
  });
  return results.flatMap((r) => r.errors || []);
}

function diagnostics(state, problems) {
  return problems.map((p) => {
    const line = state.doc.line(Math.min(Math.max(1, p.line || 1), state.doc.lines));
    const from = Math.min(line.from + Math.max(0, (p.column || 1) - 1), line.to);
    return {
      from,
      to: Math.max(from, line.to),
      severity: "error",
      message: p.path ? `${p.path}: ${p.message}` : p.message,
    };
  });
}

// -- the editor ------------------------------------------------------------------------

// options: onChange(text), onProblems(list), onSave(), extraProblems(text) -> list
export function createEditor(container, text, options = {}) {
  const extra = options.extraProblems || (() => []);
  let latestProblems = [];
  const schemaReady = loadSchema().catch(() => null);
  let schema = null;
  schemaReady.then((s) => { schema = s; });
  const validation = linter(async (view) => {
    const source = view.state.doc.toString();
    try {
      latestProblems = await serverProblems(source, extra);
    } catch (error) {
      latestProblems = [{ line: 1, column: 1, message: `cannot validate: ${error.message}` }];
    }
    if (view.state.doc.toString() !== source) return [];
    container.dataset.validated = "true";
    options.onProblems?.(latestProblems);
    return diagnostics(view.state, latestProblems);
  }, { delay: LINT_DELAY_MS });
  const saveKey = keymap.of([{ key: "Mod-s", preventDefault: true, run: () => { options.onSave?.(); return true; } }]);
  const view = new EditorView({
    parent: container,
    state: EditorState.create({
      doc: text,
      extensions: [
        saveKey,
        lineNumbers(), highlightActiveLineGutter(), highlightSpecialChars(), history(),
        foldGutter(), drawSelection(), indentOnInput(), bracketMatching(), closeBrackets(),
        highlightActiveLine(), highlightSelectionMatches(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        indentUnit.of("  "), EditorState.tabSize.of(2),
        keymap.of([...closeBracketsKeymap, ...defaultKeymap, ...searchKeymap, ...historyKeymap,
          ...foldKeymap, ...completionKeymap, indentWithTab]),
        yaml(),
        autocompletion({
          override: [async (context) => {
            const loaded = schema || await schemaReady;
            return loaded ? completeAt(loaded, context) : null;
          }],
          activateOnTyping: true,
        }),
        hoverTooltip((hoverView, pos) => (schema ? hoverAt(schema, hoverView, pos) : null)),
        validation,
        lintGutter(),
        EditorView.updateListener.of((update) => {
          if (!update.docChanged) return;
          container.dataset.validated = "false";
          options.onChange?.(update.state.doc.toString());
        }),
        EditorView.contentAttributes.of({ "aria-label": "Flow YAML" }),
      ],
    }),
  });
  return {
    view,
    get value() { return view.state.doc.toString(); },
    set value(next) {
      view.dispatch({ changes: { from: 0, to: view.state.doc.length, insert: next } });
    },
    get problems() { return latestProblems; },
    revalidate() { forceLinting(view); },
    goTo(line) {
      const target = view.state.doc.line(Math.min(Math.max(1, line), view.state.doc.lines));
      view.dispatch({ selection: { anchor: target.from, head: target.to }, scrollIntoView: true });
      view.focus();
    },
    focus() { view.focus(); },
  };
}

// A plain text editor (namespace files): the same look and keys, YAML highlighting for
// .yml/.yaml, no flow schema.
export function createTextEditor(container, text, options = {}) {
  const saveKey = keymap.of([{ key: "Mod-s", preventDefault: true, run: () => { options.onSave?.(); return true; } }]);
  const view = new EditorView({
    parent: container,
    state: EditorState.create({
      doc: text,
      extensions: [
        saveKey, lineNumbers(), highlightActiveLineGutter(), highlightSpecialChars(), history(),
        drawSelection(), indentOnInput(), bracketMatching(), highlightActiveLine(),
        syntaxHighlighting(defaultHighlightStyle, { fallback: true }),
        indentUnit.of("  "), EditorState.tabSize.of(2),
        keymap.of([...defaultKeymap, ...searchKeymap, ...historyKeymap, indentWithTab]),
        options.yaml ? yaml() : [],
        EditorView.updateListener.of((update) => {
          if (update.docChanged) options.onChange?.(update.state.doc.toString());
        }),
        EditorView.contentAttributes.of({ "aria-label": options.label || "File" }),
      ],
    }),
  });
  return {
    view,
    get value() { return view.state.doc.toString(); },
    destroy() { view.destroy(); },
  };
}
