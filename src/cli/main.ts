/**
 * The popspool command line (yargs): serve, demo, user. Every serve flag comes from the
 * settings table; a bad flag or value prints one line naming it and exits 2.
 */
import yargs, { type Argv } from 'yargs';
import { PopspoolError } from '../errors.js';
import { SETTINGS, type SettingSpec } from '../config/settings.js';
import { buildConfig } from '../config/load.js';

/** Exit status for a usage or configuration error (sysexits' EX_USAGE is 64; 2 is what shells use). */
export const EXIT_USAGE = 2;

function describe(spec: SettingSpec): string {
  const choices = spec.choices ? ` (${spec.choices.join('|')})` : '';
  return `${spec.summary}${choices}`;
}

/** Adds one option per setting. No yargs defaults: absent flags stay undefined so the config file can set them. */
function settingOptions(y: Argv): Argv {
  for (const spec of SETTINGS as readonly SettingSpec[]) {
    const shown = Array.isArray(spec.default) ? spec.default.join(',') || '(none)' : String(spec.default === '' ? '(none)' : spec.default);
    y.option(spec.name, {
      describe: describe(spec),
      type: spec.kind === 'boolean' ? 'boolean' : spec.kind === 'list' ? 'array' : 'string',
      defaultDescription: shown,
      group: 'Settings (also valid as keys in the --config file):',
      requiresArg: spec.kind !== 'boolean',
    });
  }
  return y;
}

/** Where `stats` and `admin set` find the admin listener. */
function adminClientOptions(y: Argv): Argv {
  return y
    .option('admin', { type: 'string', requiresArg: true, describe: 'admin listener HOST:PORT (default: admin-listen from --config, else 127.0.0.1:9110)' })
    .option('token-file', { type: 'string', requiresArg: true, describe: 'bearer token file (default: admin-token-file from --config)' })
    .option('config', { type: 'string', requiresArg: true, describe: 'the server\'s config file' });
}

/** The flags the user actually gave, keyed by setting name. */
function givenSettings(argv: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const spec of SETTINGS) {
    const v = argv[spec.name];
    if (v !== undefined) out[spec.name] = Array.isArray(v) ? v.map(String) : v;
  }
  return out;
}

export async function main(args: string[]): Promise<void> {
  // yargs renders the whole help text after every command's handler, to have it at hand should
  // the command fail; wrapping it to the terminal is ~0.1 s of CPU, which inetd mode (--stdio,
  // one process per connection) paid on every connection. Only --help shows that text (a
  // failure prints one line, below), so only --help wraps it.
  const wantsHelp = args.includes('--help') || args.includes('-h');
  const parser = yargs(args)
    .scriptName('popspool')
    .usage('$0 <command> [options]\n\nA POP3 server for Unix mbox spools with Qpopper-style server mode.')
    .command('serve', 'serve POP3 (standalone listeners, or --stdio for inetd/xinetd/systemd Accept=yes)', (y) =>
      settingOptions(y)
        .option('config', { type: 'string', describe: 'TOML config file whose keys are the setting names below', requiresArg: true })
        .option('stdio', { type: 'boolean', describe: 'speak POP3 on stdin/stdout (one connection), logging to stderr' }),
    async (argv) => {
      const file = argv.config as string | undefined;
      const flags = givenSettings(argv as Record<string, unknown>);
      const config = buildConfig(file, flags);
      const { serve } = await import('./serve.js');
      // SIGHUP re-reads the file; flags given at start keep winning.
      await serve(config, { stdio: Boolean(argv.stdio), reloadConfig: () => buildConfig(file, flags) });
    })
    .command('demo', 'serve the bundled demo spools on 127.0.0.1:1110 from a working copy (what npm start runs)', (y) =>
      y.option('port', { type: 'number', default: 1110, describe: 'port on 127.0.0.1' })
        .option('mode', { type: 'string', choices: ['server', 'copy'], default: 'server', describe: 'server or copy mode' }),
    async (argv) => {
      const { demo } = await import('./demo.js');
      await demo({ port: argv.port, mode: argv.mode as 'server' | 'copy' });
    })
    .command('user <action> [name]', 'manage the users file: add, passwd, del, list (password from stdin when it is not a terminal)', (y) =>
      y.positional('action', { choices: ['add', 'passwd', 'del', 'list'] as const, describe: 'what to do' })
        .positional('name', { type: 'string', describe: 'user name' })
        .option('users', { type: 'string', default: '/etc/popspool/users', describe: 'users file (Dovecot passwd-file format)', requiresArg: true }),
    async (argv) => {
      const { userCommand } = await import('./user.js');
      await userCommand(argv.action as 'add' | 'passwd' | 'del' | 'list', argv.name, argv.users);
    })
    .command('bench', 'benchmark copy mode against server mode (and installed peers); see docs/benchmarks.md', (y) =>
      y.strict(false).help(false), async () => {
      const { runBench, parseBenchArgs } = await import('../bench/index.js');
      process.exitCode = await runBench(parseBenchArgs(args.slice(args.indexOf('bench') + 1)));
    })
    .command('config-doc', 'print docs/configuration.md, generated from the settings table', () => {}, async () => {
      const { renderConfigurationDoc } = await import('../config/docs.js');
      console.log(renderConfigurationDoc());
    })
    .command('check <spool..>', 'read-only check of mbox spools: messages, sizes, anomalies (exit 0 clean, 1 anomalies, 2 unreadable)', (y) =>
      y.positional('spool', { type: 'string', array: true, describe: 'spool files, e.g. /var/mail/alice' })
        .option('strict-from', { type: 'boolean', default: false, describe: 'count messages as the server does with strict-from' })
        .option('state-dir', { type: 'string', describe: 'popspool state directory: also report leftover journals and temp drops', requiresArg: true })
        .option('lock-timeout', { type: 'number', default: 10, describe: 'seconds to wait for a writer to release the spool' })
        .option('json', { type: 'boolean', default: false, describe: 'print the reports as JSON' }),
    async (argv) => {
      const { checkCommand } = await import('./check.js');
      process.exitCode = await checkCommand(argv.spool as string[], {
        strictFrom: argv['strict-from'], stateDir: argv['state-dir'], lockTimeoutMs: argv['lock-timeout'] * 1000,
        progress: process.stderr.isTTY ? process.stderr : undefined, json: argv.json,
      });
    })
    .command('cache <action> <user>', 'show or rebuild a user\'s scan cache (uses --config/--state-dir/--spool like serve)', (y) =>
      y.positional('action', { choices: ['show', 'rebuild'] as const, describe: 'show: compare with the spool now; rebuild: rescan under the spool lock' })
        .positional('user', { type: 'string', describe: 'user name' })
        .option('config', { type: 'string', describe: 'the server\'s config file', requiresArg: true })
        .option('state-dir', { type: 'string', requiresArg: true, describe: 'state directory (default from the config)' })
        .option('spool', { type: 'string', requiresArg: true, describe: 'spool path template with %u' })
        .option('strict-from', { type: 'boolean', describe: 'as the server is configured' }),
    async (argv) => {
      const flags: Record<string, unknown> = {};
      for (const k of ['state-dir', 'spool', 'strict-from'] as const) if (argv[k] !== undefined) flags[k] = argv[k];
      const { cacheCommand } = await import('./cache-cmd.js');
      process.exitCode = await cacheCommand(argv.action as 'show' | 'rebuild', argv.user as string, buildConfig(argv.config as string | undefined, flags));
    })
    .command('stats', 'print the running server\'s status (connections, traffic, users online, limits) from its admin listener', (y) =>
      adminClientOptions(y).option('json', { type: 'boolean', default: false, describe: 'print the raw /status JSON' }),
    async (argv) => {
      const { statsCommand } = await import('./admin-client.js');
      process.exitCode = await statsCommand({ admin: argv.admin as string | undefined, tokenFile: argv['token-file'] as string | undefined, config: argv.config as string | undefined, json: Boolean(argv.json) });
    })
    .command('admin set <name> <value>', 'change a limit of the running server: max-connections, max-per-ip, idle-timeout, preauth-timeout', (y) =>
      adminClientOptions(y.positional('name', { type: 'string' }).positional('value', { type: 'string' })),
    async (argv) => {
      const { adminSetCommand } = await import('./admin-client.js');
      process.exitCode = await adminSetCommand({ admin: argv.admin as string | undefined, tokenFile: argv['token-file'] as string | undefined, config: argv.config as string | undefined }, String(argv.name), String(argv.value));
    })
    .demandCommand(1, 'name a command: serve, demo or user (see --help)')
    .parserConfiguration({ 'camel-case-expansion': false })
    .strict()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(wantsHelp ? Math.min(110, process.stdout.columns || 100) : null)
    .fail((msg, err) => {
      const text = err instanceof PopspoolError || !err ? (msg ?? err?.message) : err.message;
      console.error(`popspool: ${text ?? 'invalid command line'}`);
      if (!err) console.error('Try "popspool --help".');
      process.exit(err && !(err instanceof PopspoolError && err.code === 'CONFIG') ? 1 : EXIT_USAGE);
    });
  try {
    await parser.parseAsync();
  } catch (err) {
    if (err instanceof PopspoolError) {
      console.error(`popspool: ${err.message}`);
      process.exit(err.code === 'CONFIG' ? EXIT_USAGE : 1);
    }
    throw err;
  }
}
