/**
 * Dropping root after binding 110/995 (popa3d and Qpopper start as root too): supplementary
 * groups, then the group, then the user — in that order, since after setuid nothing else may
 * change. Called after the listeners are bound and before any client byte is read.
 */
import { readFileSync } from 'node:fs';
import { ConfigError } from '../errors.js';

export interface DropTo {
  /** User name or uid ('' = keep). */
  readonly user: string;
  /** Group name or gid ('' = the user's primary group when a user is given). */
  readonly group: string;
}

/** process.initgroups exists on POSIX (node docs) but is missing from @types/node. */
type WithInitgroups = NodeJS.Process & { initgroups?: (user: string | number, extraGroup: string | number) => void };
const proc = process as WithInitgroups;

const asId = (v: string): string | number => (/^\d+$/.test(v) ? Number(v) : v);

/** Switch to user/group; a no-op when neither is set. Throws ConfigError when not possible. */
export function dropPrivileges(to: DropTo): { uid: number; gid: number } | undefined {
  if (!to.user && !to.group) return undefined;
  if (typeof process.getuid !== 'function' || !process.setuid || !process.setgid || !proc.initgroups || !process.setgroups) {
    throw new ConfigError('user/group: changing identity is not supported on this platform');
  }
  if (process.getuid() !== 0) {
    throw new ConfigError(`user/group: only root can switch to ${to.user || ''}${to.group ? ':' + to.group : ''} (running as uid ${process.getuid()})`);
  }
  try {
    if (to.user) {
      // Supplementary groups from /etc/group, plus the configured group (e.g. mail for /var/mail dotlocks).
      proc.initgroups!(asId(to.user), to.group ? asId(to.group) : primaryGroup(to.user));
    } else {
      process.setgroups([asId(to.group)]);
    }
    if (to.group) process.setgid(asId(to.group));
    else if (to.user) process.setgid(primaryGroup(to.user));
    if (to.user) process.setuid(asId(to.user));
  } catch (e) {
    throw new ConfigError(`user/group: cannot switch to ${to.user || '(same user)'}:${to.group || '(primary group)'}: ${(e as Error).message}`);
  }
  if (to.user && process.getuid() === 0) throw new ConfigError('user/group: still root after setuid');
  return { uid: process.getuid(), gid: process.getgid!() };
}

/** The user's primary gid from /etc/passwd (initgroups does not set the gid itself). */
function primaryGroup(user: string): number {
  const id = asId(user);
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const f = line.split(':');
    if (f.length >= 4 && (f[0] === id || Number(f[2]) === id)) return Number(f[3]);
  }
  throw new ConfigError(`user: no such user "${user}" in /etc/passwd`);
}

