// The harness itself: TOTP against RFC 6238's vectors, the Maildir reader against crafted
// messages (quoted-printable, base64, nested multipart, encoded subjects), and Chromium loading
// the landing page with no console error or CSP violation, and writing a screenshot.

import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  base32Decode,
  expectVisible,
  journey,
  linkFrom,
  newPage,
  shot,
  step,
  totp,
  url,
  waitForMail,
  waitForMessage,
} from './lib.mjs';

await journey('harness', async (browser) => {
  await step('TOTP matches RFC 6238 (SHA1)', () => {
    // The RFC's SHA1 seed "12345678901234567890", base32-encoded.
    const secret = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';
    assert.equal(base32Decode(secret).toString(), '12345678901234567890');
    const vectors = [
      [59, '94287082'],
      [1111111109, '07081804'],
      [1111111111, '14050471'],
      [1234567890, '89005924'],
      [2000000000, '69279037'],
      [20000000000, '65353130'],
    ];
    for (const [time, code] of vectors) {
      assert.equal(totp(secret, time, { digits: 8 }), code, `8 digits at ${time}`);
      assert.equal(totp(secret, time), code.slice(2), `6 digits at ${time}`);
    }
    // Grouped, lower-case secrets as a page may show them.
    assert.equal(totp('gezd gnbv gy3t qojq gezd gnbv gy3t qojq', 59), '287082');
  });

  await step('the Maildir reader decodes multipart, quoted-printable and base64 mail', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tenantkit-maildir-'));
    try {
      for (const sub of ['tmp', 'new', 'cur']) mkdirSync(join(dir, sub));
      const link = 'http://127.0.0.1:1/password/reset?token=abcdefghijklmnopqrstuvwxyz0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ';
      // quoted-printable: `=` as =3D, a soft line break inside the long link, UTF-8 bytes.
      const qp = link.replace('=', '=3D');
      const qpWrapped = `${qp.slice(0, 60)}=\n${qp.slice(60)}`;
      writeFileSync(
        join(dir, 'new', '1.host'),
        [
          'X-RcptTo: someone-else@journey.test',
          'To: someone-else@journey.test',
          'Subject: Not for us',
          '',
          'nothing',
        ].join('\n'),
      );
      writeFileSync(
        join(dir, 'new', '2.host'),
        Buffer.from(
          [
            'From: Tenantkit <no-reply@tenantkit.test>',
            'To: "Ada" <ada-x@journey.test>',
            `Subject: =?utf-8?B?${Buffer.from('Reset your password — ').toString('base64')}?=`,
            '  =?utf-8?Q?Acme_=C3=A9?=',
            'MIME-Version: 1.0',
            'Content-Type: multipart/mixed; boundary="outer"',
            '',
            '--outer',
            'Content-Type: multipart/alternative;',
            ' boundary="inner=_1"',
            '',
            '--inner=_1',
            'Content-Type: text/plain; charset=utf-8',
            'Content-Transfer-Encoding: quoted-printable',
            '',
            'Caf=C3=A9 =E2=80=94 reset:',
            qpWrapped,
            '',
            '--inner=_1',
            'Content-Type: text/html; charset=utf-8',
            'Content-Transfer-Encoding: quoted-printable',
            '',
            '<p>HTML <a href=3D"http://wrong.test/">only</a></p>',
            '--inner=_1--',
            '',
            '--outer--',
            '',
          ].join('\r\n'),
          'utf8',
        ),
      );
      const base64Text = Buffer.from(`Welcome, Zoë!\nAccept: ${link.replace('/password/reset', '/invitations/accept')}\n`).toString('base64');
      writeFileSync(
        join(dir, 'cur', '3.host:2,S'),
        [
          'To: ada-x@journey.test',
          'Subject: You are invited',
          'Content-Type: multipart/alternative; boundary=b64',
          '',
          '--b64',
          'Content-Type: text/plain; charset="UTF-8"',
          'Content-Transfer-Encoding: base64',
          '',
          base64Text.slice(0, 40),
          base64Text.slice(40),
          '--b64--',
        ].join('\n'),
      );

      const reset = await waitForMessage('ADA-X@journey.test', { textIncludes: '/password/reset', dir, timeoutMs: 1_000 });
      assert.equal(reset.subject, 'Reset your password — Acme é');
      assert.match(reset.text, /^Café — reset:$/m);
      assert.ok(!reset.text.includes('wrong.test'), 'the text part wins over the HTML part');
      assert.equal(linkFrom(reset.text, '/password/reset', { base: null }), link);
      assert.equal(linkFrom(reset.text, '/password/reset', { base: 'http://127.0.0.1:1/' }), link);
      assert.throws(
        () => linkFrom(reset.text, '/password/reset', { base: 'http://localhost:9/' }),
        /not to the public URL/,
      );
      const invitation = await waitForMail('ada-x@journey.test', { subjectIncludes: 'invited', dir, timeoutMs: 1_000 });
      assert.match(invitation, /Welcome, Zoë!/);
      assert.ok(linkFrom(invitation, '/invitations/accept', { base: null }).endsWith('Z'));
      await assert.rejects(
        waitForMail('nobody@journey.test', { dir, timeoutMs: 300 }),
        /no email to nobody@journey.test/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  const page = await newPage(browser, 'visitor');
  await step('the landing page loads in Chromium without console errors or CSP violations', async () => {
    const response = await page.goto(url('/'));
    assert.equal(response.status(), 200, `GET / answered ${response.status()}`);
    await expectVisible(page.locator('h1'));
    // The header the browser actually got, so a report names the policy in force.
    assert.ok(response.headers()['content-security-policy'], 'the landing page sends a Content-Security-Policy');
    await page.waitForLoadState('networkidle');
  });
  await step('a screenshot is written', async () => {
    const file = await shot(page, 'harness-landing');
    assert.ok(statSync(file).size > 1_000, `${file} is too small to be a screenshot`);
    console.log(`  screenshot: ${file}`);
  });
});
