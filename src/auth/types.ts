/** Authentication backends. auth/ never imports spool/ or mbox/: pre-auth code cannot reach the spool. */

export interface AuthContext {
  /** Client address as the server sees it (after PROXY protocol, when trusted). */
  readonly remoteAddress: string;
  /** Whether the connection is encrypted (TLS) or local (loopback, stdio pipe). */
  readonly secure: boolean;
}

export interface Authenticator {
  /** True when `password` is right for `user`. Unknown users cost the same as known ones. */
  verify(user: string, password: string, ctx: AuthContext): Promise<boolean>;
}
