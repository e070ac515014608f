/**
 * From_ line recognition (the mbox message separator), loose and strict. Pure: a line in, a
 * boolean out. The scanner decides *where* a From_ line may stand (offset 0 or after an empty
 * line); this module decides whether a line *looks like* one.
 */

/** The five bytes every From_ line starts with (case-sensitive, as every MDA writes it). */
export const FROM_PREFIX = 'From ';

const WDAY = '(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun)';
const MON = '(?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec)';
/** Time zones as MDAs write them: numeric (+0200), names (PST, GMT, MET DST). */
const TZ = '(?:[+-]\\d{4}|[A-Z]{1,5}(?:\\s+DST)?)';
/**
 * `From sender date [remote from host]`, the c-client/Dovecot idea of a From_ line, with the
 * real-world variants: optional sender (`From Mon Jan ...`), quoted senders, `-` (Mozilla),
 * `MAILER-DAEMON`, no seconds, a time zone before or after the year, two-digit years, commas
 * after the weekday and day, and a trailing `remote from …` (UUCP).
 * Groups: 1 day, 2 hour, 3 minute, 4 second.
 */
const STRICT_RE = new RegExp(
  '^From (?:(?:"[^"]*"\\S*|\\S+)\\s+)?' +
    `${WDAY},?\\s+${MON}\\s+(\\d{1,2}),?\\s+(\\d{1,2}):(\\d{2})(?::(\\d{2}))?` +
    `(?:\\s+${TZ})?\\s+(?:\\d{4}|\\d{2})(?:\\s+${TZ})?` +
    '(?:\\s+remote from \\S+)?\\s*$',
);

/** Longest line we try to match strictly; real From_ lines are well under 1 KiB. */
export const FROM_LINE_MAX = 4096;

function toText(line: Buffer | string): string {
  let s = typeof line === 'string' ? line : line.toString('latin1');
  // Ignore the line terminator if the caller passed it.
  if (s.endsWith('\n')) s = s.slice(0, -1);
  if (s.endsWith('\r')) s = s.slice(0, -1);
  return s;
}

/**
 * Does `line` (with or without its terminator) look like a From_ line?
 * Loose: it starts with `From ` (popa3d, Mailutils). Strict: it also carries a plausible
 * ctime-style date (c-client, Dovecot), so body text such as "From here on…" that follows
 * an empty line stays body text.
 */
export function isFromLine(line: Buffer | string, strict: boolean): boolean {
  if (typeof line === 'string') {
    if (!line.startsWith(FROM_PREFIX)) return false;
  } else if (
    line.length < 5 ||
    line[0] !== 0x46 || line[1] !== 0x72 || line[2] !== 0x6f || line[3] !== 0x6d || line[4] !== 0x20
  ) {
    return false;
  }
  if (!strict) return true;
  const s = toText(line);
  if (s.length > FROM_LINE_MAX) return false;
  const m = STRICT_RE.exec(s);
  if (m === null) return false;
  const day = Number(m[1]);
  const hour = Number(m[2]);
  const minute = Number(m[3]);
  const second = m[4] === undefined ? 0 : Number(m[4]);
  return day >= 1 && day <= 31 && hour <= 23 && minute <= 59 && second <= 60;
}

/** isFromLine of buf[at, at + n), without a view of it (the scanner asks once a message). */
export function isFromLineAt(buf: Buffer, at: number, n: number, strict: boolean): boolean {
  if (n < 5 || buf[at] !== 0x46 || buf[at + 1] !== 0x72 || buf[at + 2] !== 0x6f || buf[at + 3] !== 0x6d || buf[at + 4] !== 0x20) {
    return false;
  }
  return !strict || isFromLine(buf.toString('latin1', at, at + n), true);
}
