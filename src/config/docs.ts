/**
 * Renders docs/configuration.md from the settings table, so the reference can never drift from
 * the code (a test compares the committed file with this output; `popspool config-doc` prints it).
 */
import { SETTINGS, type SettingSpec } from './settings.js';

function shownDefault(spec: SettingSpec): string {
  const d = spec.default;
  if (Array.isArray(d)) return d.length ? d.map((x) => `\`${x}\``).join(', ') : '(none)';
  if (d === '') return '(none)';
  return `\`${String(d)}\``;
}

function tomlExample(spec: SettingSpec): string {
  const d = spec.default;
  if (Array.isArray(d)) return `${spec.name} = [${d.map((x) => JSON.stringify(x)).join(', ')}]`;
  if (typeof d === 'string') return `${spec.name} = ${JSON.stringify(d || '/path/to/file')}`;
  return `${spec.name} = ${String(d)}`;
}

export function renderConfigurationDoc(): string {
  const rows = (SETTINGS as readonly SettingSpec[]).map((spec) => {
    const range = spec.min !== undefined ? ` (${spec.min}–${spec.max})` : '';
    const choices = spec.choices ? ` One of: ${spec.choices.map((c) => `\`${c}\``).join(', ')}.` : '';
    return [
      `### \`${spec.name}\``,
      '',
      `${spec.summary}.${choices}`,
      '',
      `- flag: \`--${spec.name}${spec.kind === 'boolean' ? '' : ' VALUE'}\`${spec.kind === 'list' ? ' (repeatable)' : ''}`,
      `- type: ${spec.kind}${range}; default: ${shownDefault(spec)}`,
      `- config file: \`${tomlExample(spec)}\``,
      '',
      spec.why,
      '',
    ].join('\n');
  });
  return [
    '# Configuration reference',
    '',
    '<!-- Generated from src/config/settings.ts by `popspool config-doc`; a test keeps it in sync. Edit the table, not this file. -->',
    '',
    'Every setting can be given as a command-line flag of `popspool serve` or as a key in a',
    '[TOML](https://toml.io) file passed with `--config FILE`. Flags win over the file; the file',
    'wins over the defaults. An unknown key, a wrong type or an out-of-range value stops the server',
    'with one line naming the setting, and exit status 2.',
    '',
    '```toml',
    '# /etc/popspool/popspool.toml',
    'listen = ["0.0.0.0:110"]',
    'spool = "/var/mail/%u"',
    'users = "/etc/popspool/users"',
    'mode = "server"',
    'hold-lock = false',
    '```',
    '',
    ...rows,
  ].join('\n');
}
