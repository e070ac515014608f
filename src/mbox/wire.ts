/**
 * The RFC 1939 size rule in its plainest form, an independent oracle for the scanner's tests:
 * every line counts its bytes without the terminator plus 2 (CRLF as sent); `\r\n` is one
 * terminator; a last line without a newline gets a CRLF too. Dot-stuffing is not counted.
 */
export function wireSize(content: Buffer): number {
  let size = 0;
  let lineStart = 0;
  while (lineStart < content.length) {
    const nl = content.indexOf(0x0a, lineStart);
    if (nl === -1) {
      size += content.length - lineStart + 2; // last line without newline: a CRLF is added
      break;
    }
    const textEnd = nl > lineStart && content[nl - 1] === 0x0d ? nl - 1 : nl;
    size += textEnd - lineStart + 2;
    lineStart = nl + 1;
  }
  return size;
}
