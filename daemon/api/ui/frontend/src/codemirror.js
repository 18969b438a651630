// The pieces of CodeMirror 6 that podium's flow editor uses (daemon/api/ui/static/editor.js).
export { EditorState, StateEffect, StateField, Compartment } from "@codemirror/state";
export {
  EditorView, keymap, lineNumbers, highlightActiveLine, highlightActiveLineGutter,
  drawSelection, highlightSpecialChars, hoverTooltip, Decoration,
} from "@codemirror/view";
export { defaultKeymap, history, historyKeymap, indentWithTab } from "@codemirror/commands";
export {
  syntaxHighlighting, defaultHighlightStyle, indentOnInput, bracketMatching, foldGutter,
  foldKeymap, indentUnit,
} from "@codemirror/language";
export { searchKeymap, highlightSelectionMatches } from "@codemirror/search";
export {
  autocompletion, completionKeymap, closeBrackets, closeBracketsKeymap, startCompletion,
  completionStatus, currentCompletions,
} from "@codemirror/autocomplete";
export { linter, lintGutter, forceLinting, diagnosticCount, setDiagnostics } from "@codemirror/lint";
export { yaml } from "@codemirror/lang-yaml";
