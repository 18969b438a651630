// A line diff of two texts (longest common subsequence), for the Revisions tab:
// [{kind: "same"|"del"|"add", text, old, new}] with each side's line numbers.
export function lineDiff(before, after) {
  const a = before.replace(/\n$/, "").split("\n");
  const b = after.replace(/\n$/, "").split("\n");
  // trim the common head and tail: flows change in a few places
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head += 1;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head
    && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail += 1;
  const x = a.slice(head, a.length - tail);
  const y = b.slice(head, b.length - tail);
  const table = Array.from({ length: x.length + 1 }, () => new Uint32Array(y.length + 1));
  for (let i = x.length - 1; i >= 0; i -= 1) {
    for (let j = y.length - 1; j >= 0; j -= 1) {
      table[i][j] = x[i] === y[j] ? table[i + 1][j + 1] + 1 : Math.max(table[i + 1][j], table[i][j + 1]);
    }
  }
  const rows = [];
  for (let k = 0; k < head; k += 1) rows.push({ kind: "same", text: a[k], old: k + 1, new: k + 1 });
  let i = 0;
  let j = 0;
  while (i < x.length || j < y.length) {
    if (i < x.length && j < y.length && x[i] === y[j]) {
      rows.push({ kind: "same", text: x[i], old: head + i + 1, new: head + j + 1 });
      i += 1;
      j += 1;
    } else if (j < y.length && (i >= x.length || table[i][j + 1] >= table[i + 1][j])) {
      rows.push({ kind: "add", text: y[j], old: null, new: head + j + 1 });
      j += 1;
    } else {
      rows.push({ kind: "del", text: x[i], old: head + i + 1, new: null });
      i += 1;
    }
  }
  for (let k = 0; k < tail; k += 1) {
    rows.push({ kind: "same", text: a[a.length - tail + k], old: a.length - tail + k + 1, new: b.length - tail + k + 1 });
  }
  return rows;
}
