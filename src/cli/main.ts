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
  const parser = yargs(args)
    .scriptName('popspool')
    .usage('$0 <command> [options]\n\nA POP3 server for Unix mbox spools with Qpopper-style server mode.')
    .command('serve', 'serve POP3 (standalone listeners, or --stdio for inetd/xinetd/systemd Accept=yes)', (y) =>
      settingOptions(y)
        .option('config', { type: 'string', describe: 'TOML config file whose keys are the setting names below', requiresArg: true })
        .option('stdio', { type: 'boolean', describe: 'speak POP3 on stdin/stdout (one connection), logging to stderr' }),
    async (argv) => {
      const config = buildConfig(argv.config as string | undefined, givenSettings(argv as Record<string, unknown>));
      const { serve } = await import('./serve.js');
      await serve(config, { stdio: Boolean(argv.stdio) });
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
    .demandCommand(1, 'name a command: serve, demo or user (see --help)')
    .strict()
    .help()
    .alias('h', 'help')
    .version()
    .wrap(Math.min(110, process.stdout.columns || 100))
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
