/**
 * TRANSACTION state handling (RFC 1939 §5, §7). Handlers work on ctx.maildrop (numbering,
 * marks, counters) and return outcomes; RETR and TOP return a stream outcome that the session
 * sends through the wire encoder with backpressure.
 */
import type { Readable } from 'node:stream';
import type { Drop } from '../spool/drop.js';
import type { CommandContext, CommandSpec } from './command-types.js';
import { parseLineCount } from './maildrop.js';
import { err, multiline, ok, quit, type Outcome } from './responses.js';

/** Message-number commands answer extra arguments with this (popa3d's wording). */
const NOISE = 'noise after message number';

const summary = (ctx: CommandContext): string => `${ctx.maildrop.count} messages (${ctx.maildrop.octets} octets)`;

/** https://www.rfc-editor.org/rfc/rfc1939#page-6 — STAT */
function stat(ctx: CommandContext): Outcome {
  return ok(`${ctx.maildrop.count} ${ctx.maildrop.octets}`);
}

/** https://www.rfc-editor.org/rfc/rfc1939#page-6 — LIST [msg] */
function list(ctx: CommandContext, args: readonly string[]): Outcome {
  const md = ctx.maildrop;
  if (args.length === 1) {
    const i = md.lookup(args[0]!);
    if (typeof i !== 'number') return i;
    return ok(`${i + 1} ${md.drop.messages.size(i)}`);
  }
  const lines: string[] = [];
  const messages = md.drop.messages;
  for (let i = 0; i < messages.length; i++) if (!md.deleted.has(i)) lines.push(`${i + 1} ${messages.size(i)}`);
  return multiline(summary(ctx), lines);
}

/** A small message in one buffer (Drop.readHeld at once, else Drop.readSmall), a stream otherwise. */
function openMessage(drop: Drop, i: number): Buffer | Promise<Readable | Buffer> {
  return drop.readHeld?.(i) ?? readMessage(drop, i);
}

async function readMessage(drop: Drop, i: number): Promise<Readable | Buffer> {
  return (await drop.readSmall?.(i)) ?? drop.read(i);
}

/** https://www.rfc-editor.org/rfc/rfc1939#page-8 — RETR msg */
function retr(ctx: CommandContext, args: readonly string[]): Outcome {
  const md = ctx.maildrop;
  const i = md.lookup(args[0]!);
  if (typeof i !== 'number') return i;
  return {
    kind: 'stream',
    text: `${md.drop.messages.size(i)} octets`,
    body: {
      open: () => openMessage(md.drop, i),
      onSent: (octets) => {
        md.counters.retr++;
        md.counters.retrBytes += octets;
        md.seen.add(i);
      },
    },
  };
}

/** https://www.rfc-editor.org/rfc/rfc1939#page-11 — TOP msg n */
function top(ctx: CommandContext, args: readonly string[]): Outcome {
  const md = ctx.maildrop;
  const i = md.lookup(args[0]!);
  if (typeof i !== 'number') return i;
  const n = parseLineCount(args[1]!);
  if (n === undefined) return err('invalid line count');
  return {
    kind: 'stream',
    text: 'top of message follows',
    body: {
      open: () => openMessage(md.drop, i),
      bodyLines: n,
      onSent: (octets, complete) => {
        md.counters.top++;
        md.counters.topBytes += octets;
        // fetchmail fetches whole messages with TOP: the whole body sent counts as read.
        if (complete) md.seen.add(i);
      },
    },
  };
}

/** https://www.rfc-editor.org/rfc/rfc1939#page-8 — DELE msg */
function dele(ctx: CommandContext, args: readonly string[]): Outcome {
  const md = ctx.maildrop;
  const i = md.lookup(args[0]!);
  if (typeof i !== 'number') return i;
  md.deleted.add(i);
  md.counters.dele++;
  return ok(`message ${i + 1} deleted`);
}

/** https://www.rfc-editor.org/rfc/rfc1939#page-9 — NOOP */
function noop(): Outcome {
  return ok('');
}

/** https://www.rfc-editor.org/rfc/rfc1939#page-9 — RSET */
function rset(ctx: CommandContext): Outcome {
  ctx.maildrop.deleted.clear();
  return ok(`maildrop has ${summary(ctx)}`);
}

/** https://www.rfc-editor.org/rfc/rfc1939#page-12 — UIDL [msg] */
function uidl(ctx: CommandContext, args: readonly string[]): Outcome {
  const md = ctx.maildrop;
  if (args.length === 1) {
    const i = md.lookup(args[0]!);
    if (typeof i !== 'number') return i;
    return ok(`${i + 1} ${md.drop.messages.uidl(i)}`);
  }
  const lines: string[] = [];
  const messages = md.drop.messages;
  for (let i = 0; i < messages.length; i++) if (!md.deleted.has(i)) lines.push(`${i + 1} ${messages.uidl(i)}`);
  return multiline('unique-id listing follows', lines);
}

/** https://www.rfc-editor.org/rfc/rfc1939#page-10 — QUIT in TRANSACTION enters UPDATE. */
async function quitTransaction(ctx: CommandContext): Promise<Outcome> {
  return quit(await ctx.enterUpdate());
}

const T = ['TRANSACTION'] as const;

export const TRANSACTION_COMMANDS: readonly CommandSpec[] = [
  { verb: 'STAT', states: T, minArgs: 0, maxArgs: 0, handler: stat },
  { verb: 'LIST', states: T, minArgs: 0, maxArgs: 1, tooManyText: NOISE, handler: list },
  { verb: 'RETR', states: T, minArgs: 1, maxArgs: 1, tooManyText: NOISE, handler: retr },
  { verb: 'TOP', states: T, minArgs: 2, maxArgs: 2, tooManyText: 'noise after line count', handler: top },
  { verb: 'DELE', states: T, minArgs: 1, maxArgs: 1, tooManyText: NOISE, handler: dele },
  { verb: 'NOOP', states: T, minArgs: 0, maxArgs: 0, handler: noop },
  { verb: 'RSET', states: T, minArgs: 0, maxArgs: 0, handler: rset },
  { verb: 'UIDL', states: T, minArgs: 0, maxArgs: 1, tooManyText: NOISE, handler: uidl },
  { verb: 'QUIT', states: T, minArgs: 0, maxArgs: 0, handler: quitTransaction },
];
