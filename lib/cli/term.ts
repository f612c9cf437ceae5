/**
 * Text bound for the terminal: control characters in values (file and layer names, messages that
 * quote them) are shown escaped, so that a name cannot end a line and forge a progress line, move
 * the cursor, recolour the terminal or reverse text. Escaped: C0 and C1 controls, DEL, the
 * Unicode line/paragraph separators and the bidirectional overrides and isolates.
 */
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
const NAMED: Record<string, string> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

export function shown(text: string): string {
  return text.replace(CONTROL, (c) => {
    const code = c.charCodeAt(0);
    return NAMED[c] ?? (code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16)}`);
  });
}
