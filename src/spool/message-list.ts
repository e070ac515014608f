/**
 * Drop message lists (drop.ts, MessageList): read by index, so a drop of 50,000 messages costs
 * no object per message. A cold 50k login built one (size, UIDL) object per message before its
 * reply: 18–62 ms of the login, timed inside the server. (Most of that, it turned out, was the
 * first touch of the scan's records migrating them to a new map; types.ts, Scanned, says why.)
 */
import { finalizeUidls } from '../mbox/uidl.js';
import type { ScannedMessage } from '../mbox/types.js';
import type { DropMessage, MessageList } from './drop.js';

/**
 * A scan's messages as a drop lists them. UIDLs are made unique (finalizeUidls) when first
 * asked for: a check-mail session (STAT, LIST) never asks, and for 50,000 fresh UIDL strings
 * that is ~10–20 ms (hashing each into a Set). The total is summed once.
 */
class ScanList implements MessageList {
  #uidls: readonly string[] | null = null;
  #octets = -1;
  constructor(private readonly messages: readonly ScannedMessage[]) {}
  get length(): number {
    return this.messages.length;
  }
  size(index: number): number {
    return this.at(index).size;
  }
  uidl(index: number): string {
    this.at(index);
    return (this.#uidls ??= finalizeUidls(this.messages.map((m) => m.uidlBase)))[index]!;
  }
  get octets(): number {
    if (this.#octets < 0) {
      let n = 0;
      for (const m of this.messages) n += m.size;
      this.#octets = n;
    }
    return this.#octets;
  }
  private at(index: number): ScannedMessage {
    const m = this.messages[index];
    if (m === undefined) throw new RangeError(`no message at index ${index}`);
    return m;
  }
}

/**
 * A drop's list is a pure function of its scan, and the scans a warm cache hands out share
 * their message objects: keep the list per scan (identified by its first and last message
 * objects and its length, which a different scan — a tail rescan, a rewrite — never shares all
 * three of), so warm sessions share one list, its UIDLs and its total.
 */
const memo = new WeakMap<ScannedMessage, { first: ScannedMessage; count: number; list: MessageList }>();

export function scanList(messages: readonly ScannedMessage[]): MessageList {
  const first = messages[0];
  const last = messages[messages.length - 1];
  if (!first || !last) return EMPTY;
  const hit = memo.get(last);
  if (hit && hit.first === first && hit.count === messages.length) return hit.list;
  const list = new ScanList(messages);
  memo.set(last, { first, count: messages.length, list });
  return list;
}

/** A list of (size, UIDL) pairs already made (filters, tests). */
export function listOf(entries: readonly DropMessage[]): MessageList {
  let octets = 0;
  for (const m of entries) octets += m.size;
  const at = (index: number): DropMessage => {
    const m = entries[index];
    if (m === undefined) throw new RangeError(`no message at index ${index}`);
    return m;
  };
  return { length: entries.length, octets, size: (i) => at(i).size, uidl: (i) => at(i).uidl };
}

export const EMPTY: MessageList = listOf([]);

/** Every entry of a list, in order (callers that want pairs: filters, tests, diagnostics). */
export function entries(list: MessageList): DropMessage[] {
  return Array.from({ length: list.length }, (_, i) => ({ size: list.size(i), uidl: list.uidl(i) }));
}
