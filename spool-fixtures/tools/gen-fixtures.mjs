// Deterministic generator of the sample spools in spool-fixtures/ (mail/* and cases/*).
// Run: node spool-fixtures/tools/gen-fixtures.mjs  — the outputs are committed; rerunning must not change them.
import { writeFileSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = (rel, data) => {
  const p = join(root, rel);
  mkdirSync(dirname(p), { recursive: true });
  writeFileSync(p, data);
};

/** One message: From_ line, header lines, body lines; LF endings; blank separator after. */
function msg(fromLine, headers, body) {
  return [fromLine, ...headers, '', ...body, ''].join('\n') + '\n';
}

function received(from, ip, by, id, date) {
  return [
    `Received: from ${from} (${from} [${ip}])`,
    `\tby ${by} (Postfix) with ESMTPS id ${id}`,
    `\tfor <alice@example.org>; ${date}`,
  ];
}

// ---------------------------------------------------------------- mail/alice
const alice = [];
alice.push(
  msg(
    'From postmaster@example.org  Mon Mar  4 09:12:01 2024',
    [
      'Return-Path: <postmaster@example.org>',
      'X-Original-To: alice@example.org',
      'Delivered-To: alice@example.org',
      ...received('localhost', '127.0.0.1', 'mail.example.org', '4TpQ1x0Z3kz9sBq', 'Mon,  4 Mar 2024 09:12:01 +0100 (CET)'),
      'Date: Mon, 4 Mar 2024 09:12:00 +0100',
      'From: Postmaster <postmaster@example.org>',
      'To: Alice Liddell <alice@example.org>',
      'Subject: Welcome to your new mailbox',
      'Message-ID: <20240304081200.GA1201@mail.example.org>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=us-ascii',
    ],
    [
      'Hello Alice,',
      '',
      'your mailbox on mail.example.org is ready. You can read it with any POP3',
      'client; the server is pop.example.org, port 110 with STARTTLS or 995.',
      '',
      'Regards,',
      'the postmaster',
    ],
  ),
);
alice.push(
  msg(
    'From bob@example.net  Mon Mar  4 10:03:44 2024',
    [
      'Return-Path: <bob@example.net>',
      'Delivered-To: alice@example.org',
      ...received('mx.example.net', '198.51.100.7', 'mail.example.org', '4TpR6h2Kx1z9sBr', 'Mon,  4 Mar 2024 10:03:44 +0100 (CET)'),
      'Date: Mon, 4 Mar 2024 10:03:40 +0100',
      'From: Bob Builder <bob@example.net>',
      'To: alice@example.org',
      'Subject: Config snippet with leading dots',
      'Message-ID: <87h6hk2x1c.fsf@example.net>',
      'Status: RO',
    ],
    [
      'Alice, here is the dot-file listing you asked for:',
      '',
      '.',
      '.bashrc',
      '..',
      '...and the rest is in ~/.config',
      '. <- a line that is just a dot and a space',
      '',
      'Bob',
    ],
  ),
);
alice.push(
  msg(
    'From carol@example.com  Mon Mar  4 11:20:15 2024',
    [
      'Return-Path: <carol@example.com>',
      'Delivered-To: alice@example.org',
      ...received('smtp.example.com', '203.0.113.25', 'mail.example.org', '4TpSqD5Hn3z9sBs', 'Mon,  4 Mar 2024 11:20:15 +0100 (CET)'),
      'Date: Mon, 4 Mar 2024 11:20:10 +0100',
      'From: Carol <carol@example.com>',
      'To: alice@example.org',
      'Subject: Quoted From lines',
      'Message-ID: <c0ffee.1709547610@example.com>',
    ],
    [
      'The delivery agent quoted these lines for us:',
      '',
      '>From the desk of Carol,',
      '>From here on everything is fine.',
      '',
      '>From a new paragraph too.',
      '-- ',
      'Carol',
    ],
  ),
);
alice.push(
  msg(
    'From dave@example.org  Mon Mar  4 12:45:00 2024',
    [
      'Return-Path: <dave@example.org>',
      'Delivered-To: alice@example.org',
      ...received('laptop.example.org', '192.0.2.44', 'mail.example.org', '4TpTl52bXqz9sBt', 'Mon,  4 Mar 2024 12:45:00 +0100 (CET)'),
      'Date: Mon, 4 Mar 2024 12:44:58 +0100',
      'From: Dave <dave@example.org>',
      'To: alice@example.org',
      'Subject: Re: lunch',
      'Message-ID: <ZeW2Mq9xkR2Ae1@laptop.example.org>',
      'In-Reply-To: <20240304112000.AB12@example.org>',
    ],
    [
      'Sounds good. See you at noon.',
      'From Tuesday on I am travelling, so it has to be this week.',
      'From there I will write again.',
      '',
      'Dave',
    ],
  ),
);
alice.push(
  msg(
    'From erin@example.com  Mon Mar  4 14:02:31 2024',
    [
      'Return-Path: <erin@example.com>',
      'Delivered-To: alice@example.org',
      ...received('smtp.example.com', '203.0.113.25', 'mail.example.org', '4TpWT76c0Fz9sBv', 'Mon,  4 Mar 2024 14:02:31 +0100 (CET)'),
      'Date: Mon, 4 Mar 2024 14:02:29 +0100',
      'From: Erin <erin@example.com>',
      'To: Alice <alice@example.org>',
      'Subject: The report, attached',
      'Message-ID: <5e7a.1709557349@example.com>',
      'MIME-Version: 1.0',
      'Content-Type: multipart/mixed; boundary="=-=-=_b4d1c0de"',
    ],
    [
      'This is a multi-part message in MIME format.',
      '',
      '--=-=-=_b4d1c0de',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 7bit',
      '',
      'Hi Alice, the quarterly numbers are in the attached CSV.',
      '',
      '--=-=-=_b4d1c0de',
      'Content-Type: text/csv; name="q1.csv"',
      'Content-Disposition: attachment; filename="q1.csv"',
      'Content-Transfer-Encoding: base64',
      '',
      ...Buffer.from('month,orders,revenue\njan,120,3400.50\nfeb,98,2870.00\nmar,143,4011.25\n')
        .toString('base64')
        .match(/.{1,76}/g),
      '',
      '--=-=-=_b4d1c0de--',
    ],
  ),
);
alice.push(
  msg(
    'From francois@example.fr  Mon Mar  4 15:30:02 2024',
    [
      'Return-Path: <francois@example.fr>',
      'Delivered-To: alice@example.org',
      ...received('mx1.example.fr', '198.51.100.80', 'mail.example.org', '4TpYRQ0l8nz9sBw', 'Mon,  4 Mar 2024 15:30:02 +0100 (CET)'),
      'Date: Mon, 4 Mar 2024 15:29:55 +0100',
      'From: =?utf-8?q?Fran=C3=A7ois?= <francois@example.fr>',
      'To: alice@example.org',
      'Subject: =?utf-8?q?R=C3=A9union_de_jeudi?=',
      'Message-ID: <a1b2c3d4@example.fr>',
      'MIME-Version: 1.0',
      'Content-Type: text/plain; charset=utf-8',
      'Content-Transfer-Encoding: 8bit',
    ],
    [
      'Bonjour Alice,',
      '',
      'la réunion de jeudi est déplacée à 14 h. Café et croissants prévus ☕.',
      'Grüße auch an Bob — und bis bald!',
      '',
      'François',
    ],
  ),
);
alice.push(
  msg(
    'From grace@example.net  Tue Mar  5 08:15:40 2024',
    [
      'Return-Path: <grace@example.net>',
      'X-UIDL: 9d1c2f7a3b4e5d6c',
      'Delivered-To: alice@example.org',
      ...received('mx.example.net', '198.51.100.7', 'oldpop.example.org', '4Tq1cV2mQ3z9sBx', 'Tue,  5 Mar 2024 08:15:40 +0100 (CET)'),
      'Date: Tue, 5 Mar 2024 08:15:33 +0100',
      'From: Grace <grace@example.net>',
      'To: alice@example.org',
      'Subject: Migrated from the old Qpopper server',
      'Message-ID: <old-qpopper-1@example.net>',
      'Status: RO',
    ],
    [
      'This message was downloaded once through the old server; its X-UIDL header',
      'must be kept as the UIDL so the client does not fetch it again.',
    ],
  ),
);
alice.push(
  msg(
    'From MAILER-DAEMON Tue Mar  5 09:00:12 2024',
    [
      'Return-Path: <>',
      'Delivered-To: alice@example.org',
      ...received('localhost', '127.0.0.1', 'mail.example.org', '4Tq2bN1dC7z9sBy', 'Tue,  5 Mar 2024 09:00:12 +0100 (CET)'),
      'Date: Tue,  5 Mar 2024 09:00:12 +0100 (CET)',
      'From: MAILER-DAEMON@mail.example.org (Mail Delivery System)',
      'Subject: Undelivered Mail Returned to Sender',
      'To: alice@example.org',
      'Auto-Submitted: auto-replied',
      'Message-Id: <20240305080012.3C1A81A0C1@mail.example.org>',
    ],
    [
      'This is the mail system at host mail.example.org.',
      '',
      "I'm sorry to have to inform you that your message could not",
      'be delivered to one or more recipients.',
      '',
      '<nobody@example.invalid>: Host or domain name not found.',
    ],
  ),
);
alice.push(
  msg(
    'From root@mail.example.org  Tue Mar  5 06:25:01 2024',
    [
      'Return-Path: <root@mail.example.org>',
      'Delivered-To: alice@example.org',
      'Received: by mail.example.org (Postfix, from userid 0)',
      '\tid 7E2F41A0C2; Tue,  5 Mar 2024 06:25:01 +0100 (CET)',
      'From: root@mail.example.org (Cron Daemon)',
      'To: alice@example.org',
      'Subject: Cron <alice@mail> /home/alice/bin/backup.sh',
      'Content-Type: text/plain; charset=UTF-8',
      'Date: Tue,  5 Mar 2024 06:25:01 +0100 (CET)',
      'Message-Id: <20240305052501.7E2F41A0C2@mail.example.org>',
    ],
    ['backup: 1342 files, 88 MB, done in 41 s', 'rsync: no errors'],
  ),
);
// A local message without Received (sent with mail(1) on the host).
alice.push(
  msg(
    'From alice@example.org Tue Mar  5 10:11:12 2024',
    [
      'Date: Tue, 05 Mar 2024 10:11:12 +0100',
      'To: alice@example.org',
      'Subject: note to self',
      'Message-ID: <20240305091112.1234@mail.example.org>',
      'From: alice@example.org',
    ],
    ['Remember: renew the domain before April.'],
  ),
);
const lists = [
  ['heidi@lists.example.com', 'Heidi', 'Tue Mar  5 12:00:00 2024', 'Tue, 5 Mar 2024 12:00:00 +0000', 'Meeting minutes, March'],
  ['ivan@example.org', 'Ivan', 'Tue Mar  5 13:14:15 2024', 'Tue, 5 Mar 2024 13:14:15 +0100', 'Patch review'],
  ['judy@example.net', 'Judy', 'Wed Mar  6 07:45:09 2024', 'Wed, 6 Mar 2024 07:45:09 +0100', 'Travel plans'],
  ['mallory@example.com', 'Mallory', 'Wed Mar  6 09:01:02 2024', 'Wed, 6 Mar 2024 09:01:02 +0100', 'Invoice overdue (not really)'],
  ['niaj@example.org', 'Niaj', 'Wed Mar  6 11:11:11 2024', 'Wed, 6 Mar 2024 11:11:11 +0100', 'Printer on floor 2'],
  ['olivia@example.com', 'Olivia', 'Wed Mar  6 16:40:30 2024', 'Wed, 6 Mar 2024 16:40:30 +0100', 'Conference badge'],
  ['peggy@example.net', 'Peggy', 'Thu Mar  7 08:05:55 2024', 'Thu, 7 Mar 2024 08:05:55 +0100', 'Quarterly planning'],
  ['rupert@example.org', 'Rupert', 'Thu Mar  7 09:30:00 2024', 'Thu, 7 Mar 2024 09:30:00 +0100', 'Code of conduct update'],
  ['sybil@example.com', 'Sybil', 'Thu Mar  7 13:13:13 2024', 'Thu, 7 Mar 2024 13:13:13 +0100', 'Re: Patch review'],
  ['trent@example.net', 'Trent', 'Fri Mar  8 10:00:01 2024', 'Fri, 8 Mar 2024 10:00:01 +0100', 'Weekend hike'],
  ['victor@example.org', 'Victor', 'Fri Mar  8 17:22:48 2024', 'Fri, 8 Mar 2024 17:22:48 +0100', 'Release 2.4 is out'],
];
lists.forEach(([addr, name, fromDate, date, subject], k) => {
  const host = addr.split('@')[1];
  const id = `4Tr${(1000 + k * 37).toString(36)}Xy${k}z9sC${String.fromCharCode(97 + k)}`;
  alice.push(
    msg(
      `From ${addr}  ${fromDate}`,
      [
        `Return-Path: <${addr}>`,
        'Delivered-To: alice@example.org',
        ...received(`mx.${host}`, `198.51.100.${100 + k}`, 'mail.example.org', id, `${date}`),
        `Date: ${date}`,
        `From: ${name} <${addr}>`,
        'To: alice@example.org',
        `Subject: ${subject}`,
        `Message-ID: <${k}.${id}@${host}>`,
        ...(k % 3 === 0 ? ['Status: O'] : []),
        ...(k % 4 === 1 ? ['Status: RO', 'X-Status: A'] : []),
      ],
      [
        `Hi Alice,`,
        '',
        `${subject}: details below.`,
        ...Array.from({ length: 2 + (k % 5) }, (_, j) => `Line ${j + 1} of the notes about "${subject.toLowerCase()}".`),
        '',
        `-- `,
        name,
      ],
    ),
  );
});
out('mail/alice', alice.join(''));

// ---------------------------------------------------------------- mail/bob (empty)
out('mail/bob', '');

// ---------------------------------------------------------------- mail/carol (CRLF)
const crlf = (s) => s.replace(/\n/g, '\r\n');
out(
  'mail/carol',
  crlf(
    msg(
      'From dave@example.org Wed Mar  6 08:00:00 2024',
      [
        'Received: from laptop.example.org by mail.example.org; Wed, 6 Mar 2024 08:00:00 +0100',
        'Date: Wed, 6 Mar 2024 08:00:00 +0100',
        'From: dave@example.org',
        'To: carol@example.com',
        'Subject: CRLF spool, first',
        'Message-ID: <crlf-1@example.org>',
      ],
      ['A spool written by a Windows-minded tool.', '.leading dot', ''],
    ) +
      msg(
        'From erin@example.com Wed Mar  6 09:30:00 2024',
        [
          'Received: from smtp.example.com by mail.example.org; Wed, 6 Mar 2024 09:30:00 +0100',
          'Date: Wed, 6 Mar 2024 09:30:00 +0100',
          'From: erin@example.com',
          'To: carol@example.com',
          'Subject: CRLF spool, second',
          'Message-ID: <crlf-2@example.com>',
          'Status: RO',
        ],
        ['Second message.', 'From here on the body continues (not a From_ line: no blank line before).'],
      ) +
      msg(
        'From frank@example.net Wed Mar  6 10:45:00 2024',
        [
          'Received: from mx.example.net by mail.example.org; Wed, 6 Mar 2024 10:45:00 +0100',
          'Date: Wed, 6 Mar 2024 10:45:00 +0100',
          'From: frank@example.net',
          'To: carol@example.com',
          'Subject: CRLF spool, third',
          'Message-ID: <crlf-3@example.net>',
        ],
        ['Third and last.'],
      ),
  ),
);

// ---------------------------------------------------------------- mail/mallory (malformed)
out(
  'mail/mallory',
  'This is not an mbox: a stray line before the first From_ line.\n\n' +
    msg('From eve@example.com Thu Mar  7 12:00:00 2024', ['Subject: hidden', 'Date: Thu, 7 Mar 2024 12:00:00 +0000'], ['gotcha']),
);

// ---------------------------------------------------------------- cases/
const F = (who, d = 'Mon Jan  1 00:00:00 2024') => `From ${who} ${d}`;
out(
  'cases/no-final-newline.mbox',
  msg(F('a@example.org'), ['Subject: one'], ['first']) + `${F('b@example.org')}\nSubject: two\n\nno newline at the end`,
);
out(
  'cases/nul-bytes.mbox',
  msg(F('a@example.org'), ['Subject: binary junk'], ['before\0after', '\0\0\0', 'end']) +
    msg(F('b@example.org'), ['Subject: next'], ['ok']),
);
out(
  'cases/long-line.mbox',
  msg(F('a@example.org'), ['Subject: a very long line'], ['short', 'x'.repeat(200 * 1024), 'short again']) +
    msg(F('b@example.org'), ['Subject: after the long one'], ['ok']),
);
const dup = msg(F('list@example.org', 'Tue Feb  6 10:00:00 2024'), [
  'Received: from mx.example.org by mail.example.org; Tue, 6 Feb 2024 10:00:00 +0100',
  'Subject: sent to two aliases',
  'Message-ID: <dup@example.org>',
], ['identical copies arrive via two aliases']);
out('cases/duplicates.mbox', dup + dup + msg(F('other@example.org'), ['Subject: different'], ['x']) + dup);
out(
  'cases/x-uidl.mbox',
  msg(F('a@example.org'), ['X-UIDL: 1a2b3c4d5e6f', 'Subject: valid X-UIDL'], ['reuse me']) +
    msg(F('b@example.org'), [`X-UIDL: ${'z'.repeat(71)}`, 'Subject: X-UIDL too long'], ['hash me']) +
    msg(F('c@example.org'), ['X-UIDL: has space', 'Subject: X-UIDL with a space'], ['hash me too']) +
    msg(F('d@example.org'), ['x-uidl:   1a2b3c4d5e6f  ', 'Subject: same X-UIDL as the first'], ['duplicate X-UIDL']),
);
out(
  'cases/from-in-body.mbox',
  msg(F('a@example.org'), ['Subject: From_ rules'], [
    'A line beginning with From after a non-empty line is body text:',
    'From the start, this was body text.',
    '',
    'From here on, after an empty line, a loose scanner starts a new message.',
    'and this line belongs to that new message.',
  ]) + msg(F('b@example.org'), ['Subject: last'], ['end']),
);
out(
  'cases/trailing-empty-lines.mbox',
  F('a@example.org') + '\nSubject: three empty lines at the end\n\nbody\n\n\n\n' +
    F('b@example.org') + '\nSubject: headers only, then separator\n\n' +
    F('c@example.org') + '\nSubject: two empty lines before EOF\n\nbody\n\n\n',
);
out(
  'cases/strict-vs-loose.mbox',
  [
    msg('From MAILER-DAEMON Fri Jul  8 12:08:34 2011', ['Subject: mailer-daemon'], ['one', '', 'From here on, body text in strict mode.', 'more']),
    msg('From alice@example.org Sat Jan  3 01:05:34 1996 +0200', ['Subject: numeric zone'], ['two']),
    msg('From bob Mon Jan 1 00:00 2024', ['Subject: no seconds'], ['three']),
    msg('From - Fri Jul  8 12:08:34 2011', ['Subject: dash sender'], ['four']),
    msg('From uucp!host!carol Thu Nov 29 22:33:52 2001 remote from gateway', ['Subject: remote from'], ['five']),
    msg('From dave@example.org Thu Nov 29 22:33:52 EET 2001', ['Subject: zone before year'], ['six', '', 'From: not a From_ line either way (no space)']),
  ].join(''),
);
out(
  'cases/mixed-endings.mbox',
  `${F('a@example.org')}\r\nSubject: mixed\r\n\nlf line\ncrlf line\r\ncr cr lf\r\r\nlone\rcr\n\r\n` +
    `${F('b@example.org')}\nSubject: lf\n\nok\n`,
);
out(
  'cases/empty-message.mbox',
  `${F('a@example.org')}\n\n${F('b@example.org')}\n\n\n${F('c@example.org')}`,
);
out(
  'cases/status.mbox',
  msg(F('a@example.org'), ['Subject: read', 'Status: RO', 'X-Status: A'], ['Status: not a header here']) +
    msg(F('b@example.org'), ['Subject: unread'], ['Status: RO in the body does not count']) +
    msg(F('c@example.org'), ['status:O  ', 'Subject: lower-case name, no space'], ['x']),
);
