// The Run dialog: one typed field per flow input, defaults filled in, and the server's
// refusals (422, one message per input, "input 'name': ...") shown beside their fields.
import { api, enc, h } from "./podium.js";

function choices(input) {
  return (input.values || []).map((v) => (typeof v === "object" && v !== null
    ? { value: String(v.value), label: String(v.label ?? v.value) }
    : { value: String(v), label: String(v) }));
}

function initial(input) {
  const value = input.defaults ?? input.prefill;
  if (value === undefined) return null;
  // The API answers a default as Kestra does, as text: a list arrives as JSON text.
  if (input.type === "MULTISELECT" && typeof value === "string") {
    try { return JSON.parse(value); } catch { return value; }
  }
  return value;
}

function asText(value) {
  if (value === null || value === undefined) return "";
  return typeof value === "object" ? JSON.stringify(value) : String(value);
}

function localDateTime(value) {
  // A DATETIME default (ISO, UTC) shown in the browser's time for datetime-local.
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return "";
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T`
    + `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}`;
}

function placeholder(input) {
  // An OBJECT is one record and a TABLE a list of them, written as JSON with these keys.
  const record = (fields) => `{${(fields || []).map((f) => `"${f.id}": …`).join(", ")}}`;
  switch (input.type) {
    case "ARRAY": return '["a", "b"]';
    case "OBJECT": return record(input.properties);
    case "TABLE": return `[${record(input.columns)}]`;
    default: return "";
  }
}

function control(input) {
  const name = input.id;
  const value = initial(input);
  const id = `input-${name}`;
  switch (input.type) {
    case "BOOLEAN":
    case "BOOL":
      return h("input", { id, name, type: "checkbox", checked: value === true || value === "true" });
    case "INT":
      return h("input", { id, name, type: "number", step: "1", value: asText(value) });
    case "FLOAT":
      return h("input", { id, name, type: "number", step: "any", value: asText(value) });
    case "DATE":
      return h("input", { id, name, type: "date", value: asText(value) });
    case "TIME":
      return h("input", { id, name, type: "time", step: "1", value: asText(value) });
    case "DATETIME":
      return h("input", { id, name, type: "datetime-local", step: "1",
        value: value ? localDateTime(value) : "" });
    case "FILE":
      return h("input", { id, name, type: "file",
        accept: (input.allowedFileExtensions || []).join(",") || null });
    case "SECRET":
      return h("input", { id, name, type: "password", value: asText(value), autocomplete: "off" });
    case "EMAIL":
      return h("input", { id, name, type: "email", value: asText(value) });
    case "SELECT":
    case "ENUM":
      if (input.isRadio) {
        return h("div", { id, class: "radios", role: "radiogroup" }, choices(input).map((c) =>
          h("label", {}, h("input", { type: "radio", name, value: c.value,
            checked: asText(value) === c.value }), c.label)));
      }
      return h("select", { id, name },
        input.required === false || value === null ? h("option", { value: "" }, "") : null,
        choices(input).map((c) => h("option", { value: c.value, selected: asText(value) === c.value },
          c.label)));
    case "MULTISELECT": {
      const chosen = new Set((Array.isArray(value) ? value : []).map(String));
      return h("select", { id, name, multiple: true },
        choices(input).map((c) => h("option", { value: c.value, selected: chosen.has(c.value) },
          c.label)));
    }
    case "ARRAY":
    case "JSON":
    case "YAML":
    case "OBJECT":
    case "TABLE":
      return h("textarea", { id, name, rows: input.type === "TABLE" ? 5 : 3, class: "mono",
        placeholder: placeholder(input) }, asText(value));
    default:
      return h("input", { id, name, type: "text", value: asText(value),
        placeholder: input.type === "DURATION" ? "PT5M" : null });
  }
}

export function field(input) {
  const label = input.displayName || input.id;
  const required = input.required !== false && initial(input) === null;
  return h("div", { class: "field", "data-input": input.id },
    h("label", { for: `input-${input.id}` }, label, required ? h("span", { class: "req" }, " *") : null,
      h("span", { class: "type" }, ` ${input.type}`)),
    control(input),
    input.description ? h("small", { class: "help" }, input.description) : null,
    h("small", { class: "field-error", hidden: true }));
}

export function formData(form, inputs) {
  const data = new FormData();
  for (const input of inputs) {
    const element = form.elements.namedItem(input.id);
    if (!element) continue;
    switch (input.type) {
      case "BOOLEAN":
      case "BOOL":
        data.append(input.id, element.checked ? "true" : "false");
        break;
      case "FILE":
        if (element.files.length) data.append(input.id, element.files[0], element.files[0].name);
        break;
      case "MULTISELECT": {
        const picked = [...element.selectedOptions].map((o) => o.value);
        if (picked.length) data.append(input.id, JSON.stringify(picked));
        break;
      }
      case "DATETIME":
        if (element.value) data.append(input.id, new Date(element.value).toISOString());
        break;
      default:
        if (element.value !== "") data.append(input.id, element.value);
    }
  }
  return data;
}

export function openRunDialog(flow) {
  const dialog = document.getElementById("run-dialog");
  const form = document.getElementById("run-form");
  const fields = document.getElementById("run-fields");
  const general = document.getElementById("run-error");
  const submit = document.getElementById("run-submit");
  const inputs = flow.inputs || [];
  document.getElementById("run-flow-name").textContent = `${flow.namespace}.${flow.id}`;
  fields.replaceChildren(...(inputs.length ? inputs.map(field)
    : [h("p", { class: "muted" }, "This flow has no inputs.")]));
  general.hidden = true;
  submit.disabled = false;
  document.getElementById("run-cancel").onclick = () => dialog.close();
  form.onsubmit = async (event) => {
    event.preventDefault();
    for (const node of fields.querySelectorAll(".field-error")) node.hidden = true;
    for (const node of fields.querySelectorAll(".field.invalid")) node.classList.remove("invalid");
    general.hidden = true;
    submit.disabled = true;
    try {
      const execution = await api(`/api/v1/executions/${enc(flow.namespace)}/${enc(flow.id)}`,
        { method: "POST", body: formData(form, inputs) });
      location.assign(`/ui/executions/${enc(execution.id)}`);
    } catch (error) {
      submit.disabled = false;
      showRefusal(fields, general, error);
    }
  };
  dialog.showModal();
}

export function showRefusal(fields, general, error) {
  const messages = error.errors && error.errors.length
    ? error.errors.map((e) => e.message) : [error.message];
  const left = [];
  const ids = [...fields.querySelectorAll(".field[data-input]")].map((b) => b.dataset.input);
  for (const message of messages) {
    // "input 'disks[1].size_gb': ...": the input is the longest declared id the path starts
    // with (an id may itself hold dots), followed by an item's index or a record's key.
    const match = /^input '([^']+)'/.exec(message);
    const path = match ? match[1] : "";
    const id = ids.filter((i) => path === i || path.startsWith(`${i}[`) || path.startsWith(`${i}.`))
      .sort((a, b) => b.length - a.length)[0];
    const box = id && fields.querySelector(`.field[data-input="${CSS.escape(id)}"]`);
    if (!box) { left.push(message); continue; }
    box.classList.add("invalid");
    const note = box.querySelector(".field-error");
    // Beside its field the input's name goes without saying; an item's index or key does not.
    const inner = path.slice(id.length).replace(/^\./, "");
    const label = inner.startsWith("[") ? `item ${inner}: ` : inner ? `${inner}: ` : "";
    const text = message.replace(/^input '[^']+':\s*/, label);
    note.textContent = note.hidden ? text : `${note.textContent}; ${text}`;
    note.hidden = false;
  }
  if (left.length) {
    general.textContent = left.join("\n");
    general.hidden = false;
  }
}
