/**
 * Work a session starts and leaves running after its reply: cache files written after the
 * login +OK, an update's image file unlinked after the QUIT +OK. None of it is part of a crash
 * argument (a lost cache file is a miss; an image no journal names is an orphan that start-up
 * removes), but an orderly exit waits for it, so a drained server leaves no half-done work.
 */
const pending = new Set<Promise<void>>();

/**
 * Tracks `work` until it settles. The caller handles (logs) its failure; one it did not handle
 * is dropped here rather than become an unhandled rejection, which would end the server.
 */
export function afterReply(work: Promise<void>): Promise<void> {
  const tracked = work.catch(() => {}).finally(() => pending.delete(tracked));
  pending.add(tracked);
  return tracked;
}

/** Resolves once all work handed to afterReply (including work started meanwhile) has settled. */
export async function backgroundSettled(): Promise<void> {
  while (pending.size > 0) await Promise.allSettled([...pending]);
}

/** A promise and the function that resolves it: work waits on `opened` until `open()`. */
export interface Gate {
  readonly opened: Promise<void>;
  open(): void;
}

export function gate(): Gate {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}
