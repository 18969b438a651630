// What the flow's JSON Schema (GET /api/v1/plugins/schemas/flow) says about the place of the
// cursor in a flow's YAML: which object it is in (a task of some type, a trigger, the flow),
// the properties that object takes and the values a property takes. Read from the lines
// above and below the cursor by their indentation, so that it works on a file being typed,
// which is seldom valid YAML.

const KEY = /^([A-Za-z0-9_$][\w.$-]*)\s*:(?:\s+(.*?))?\s*$/;

// One line: its indentation, whether it is a list item, and its key and value if any.
export function lineInfo(text) {
  const line = text.replace(/\s+#.*$/, "").replace(/\r$/, "");
  if (!line.trim() || /^\s*#/.test(line)) return { blank: true };
  const indent = line.length - line.trimStart().length;
  let rest = line.slice(indent);
  let keyIndent = indent;
  let dash = false;
  const item = /^-(\s+|$)/.exec(rest);
  if (item) {
    dash = true;
    keyIndent = indent + item[0].length;
    rest = rest.slice(item[0].length);
  }
  const key = KEY.exec(rest);
  const value = key && key[2] !== undefined ? unquote(key[2]) : null;
  return { blank: false, indent, keyIndent, dash, key: key ? key[1] : null, value, rest };
}

function unquote(value) {
  const text = value.trim();
  return /^(["']).*\1$/.test(text) ? text.slice(1, -1) : text;
}

// The mapping whose keys sit at `indent` around line `row`: where it starts, whether it is
// a list item, the keys it has and its `type:`.
function objectAround(lines, row, indent) {
  const keys = new Map();
  let start = 0;
  let item = false;
  let dashIndent = null;
  for (let r = row; r >= 0; r -= 1) {
    const info = lineInfo(lines[r]);
    if (info.blank) continue;
    if (info.keyIndent === indent && info.key) keys.set(info.key, { row: r, value: info.value });
    if (info.dash && info.keyIndent === indent) {
      start = r;
      item = true;
      dashIndent = info.indent;
      break;
    }
    if (info.indent < indent && !(info.dash && info.keyIndent === indent)) {
      start = r + 1;
      break;
    }
  }
  for (let r = row + 1; r < lines.length; r += 1) {
    const info = lineInfo(lines[r]);
    if (info.blank) continue;
    if (info.indent < indent) break;
    if (info.indent === indent && info.key && !keys.has(info.key)) {
      keys.set(info.key, { row: r, value: info.value });
    }
  }
  return { start, item, dashIndent, keys, type: keys.get("type")?.value || null };
}

// The chain of objects from the flow down to the one whose keys sit at `indent` around
// `row`: [{key, item, type, keys}], the first being the flow itself.
export function framesAt(lines, row, indent) {
  const frames = [];
  let guard = 0;
  for (;;) {
    const object = objectAround(lines, row, indent);
    const frame = { indent, item: object.item, type: object.type, keys: object.keys, key: null };
    frames.unshift(frame);
    if (indent === 0 && !object.item) return frames;
    // the key this object (or the list it is an item of) belongs to
    const below = object.item ? object.dashIndent : indent;
    let owner = -1;
    for (let r = object.start - 1; r >= 0; r -= 1) {
      const info = lineInfo(lines[r]);
      if (info.blank) continue;
      if (info.keyIndent < below || (info.keyIndent === below && !info.dash && object.item)) {
        owner = r;
        break;
      }
    }
    if (owner < 0 || (guard += 1) > 64) return frames;
    const info = lineInfo(lines[owner]);
    if (!info.key) return frames;
    frame.key = info.key;
    row = owner;
    indent = info.keyIndent;
  }
}

// -- the schema ------------------------------------------------------------------------

export class FlowSchema {
  constructor(document) {
    this.document = document;
    this.definitions = document.definitions || {};
  }

  deref(schema) {
    let out = schema || {};
    let guard = 0;
    while (out.$ref && guard < 32) {
      const name = out.$ref.split("/").at(-1);
      const { $ref, ...rest } = out;
      out = { ...(this.definitions[name] || {}), ...rest };
      guard += 1;
    }
    if (out.allOf) {
      const { allOf, ...rest } = out;
      out = allOf.reduce((merged, part) => ({ ...this.deref(part), ...merged }), rest);
    }
    return out;
  }

  // Every object a schema may be (the alternatives of anyOf/oneOf, flattened).
  alternatives(schema) {
    const resolved = this.deref(schema);
    const options = resolved.anyOf || resolved.oneOf;
    if (!options) return [resolved];
    return options.flatMap((option) => this.alternatives(option));
  }

  // The objects a schema may be, narrowed by the `type:` written in the object.
  objects(schema, type) {
    const all = this.alternatives(schema).filter((s) => s.properties || s.additionalProperties);
    if (!type) return all;
    const typed = all.filter((s) => typesOf(s).includes(type));
    return typed.length ? typed : all.filter((s) => !typesOf(s).length);
  }

  child(schema, key) {
    const resolved = this.deref(schema);
    if (resolved.properties && key in resolved.properties) return resolved.properties[key];
    if (resolved.additionalProperties && typeof resolved.additionalProperties === "object") {
      return resolved.additionalProperties;
    }
    return null;
  }

  items(schema) {
    for (const option of this.alternatives(schema)) {
      if (option.items) return option.items;
    }
    return null;
  }

  // The schemas the object of the last frame may be: one when its type is known.
  objectsAt(frames, { untyped = false } = {}) {
    let candidates = this.objects(this.document, frames[0].type);
    for (let i = 1; i < frames.length; i += 1) {
      const frame = frames[i];
      const next = [];
      for (const candidate of candidates) {
        let value = this.child(candidate, frame.key);
        if (value && frame.item) value = this.items(value);
        if (!value) continue;
        const last = i === frames.length - 1;
        next.push(...this.objects(value, last && untyped ? null : frame.type));
      }
      candidates = next;
    }
    return candidates;
  }
}

export function typesOf(schema) {
  const type = schema.properties?.type;
  if (!type) return [];
  if (type.const) return [type.const];
  return Array.isArray(type.enum) ? type.enum : [];
}

// "string", "integer | expression", "list of string", "one of: A, B"...
export function describeType(flowSchema, schema) {
  const resolved = flowSchema.deref(schema);
  if (resolved.enum) return `one of ${resolved.enum.join(", ")}`;
  const options = resolved.anyOf || resolved.oneOf;
  if (options) {
    const names = options.map((o) => (o.pattern && o.type === "string" && resolved.$dynamic
      ? "expression" : describeType(flowSchema, o)));
    return [...new Set(names)].join(" | ");
  }
  if (resolved.type === "array") {
    const items = resolved.items ? flowSchema.deref(resolved.items) : {};
    return `list of ${items.title || describeType(flowSchema, items)}`;
  }
  if (resolved.title && resolved.properties) return resolved.title;
  if (resolved.type === "object") return "mapping";
  return resolved.type || "any";
}
