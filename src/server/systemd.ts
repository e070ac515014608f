/**
 * systemd socket activation (sd_listen_fds(3)): when LISTEN_PID is our pid, descriptors
 * 3 … 3+LISTEN_FDS-1 are listening sockets bound for us. LISTEN_FDNAMES (FileDescriptorName= in
 * the .socket unit) tells which are implicit TLS: a name containing "pop3s" or "tls".
 * Unset the variables afterwards so children never inherit them (as sd_listen_fds does).
 */

/** sd_listen_fds(3): SD_LISTEN_FDS_START. */
export const SD_LISTEN_FDS_START = 3;

export interface ActivatedSocket {
  readonly fd: number;
  readonly name: string;
  readonly tls: boolean;
}

export function listenFds(env: NodeJS.ProcessEnv = process.env, pid = process.pid): ActivatedSocket[] {
  const n = Number(env.LISTEN_FDS);
  const forUs = env.LISTEN_PID !== undefined && Number(env.LISTEN_PID) === pid;
  const names = (env.LISTEN_FDNAMES ?? '').split(':');
  if (env === process.env) {
    delete process.env.LISTEN_PID;
    delete process.env.LISTEN_FDS;
    delete process.env.LISTEN_FDNAMES;
  }
  if (!forUs || !Number.isInteger(n) || n <= 0) return [];
  return Array.from({ length: n }, (_, i) => {
    const name = names[i] ?? '';
    return { fd: SD_LISTEN_FDS_START + i, name, tls: /pop3s|tls/i.test(name) };
  });
}
