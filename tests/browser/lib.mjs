// Shared helpers for the browser journeys that tests/tests/browser.rs runs with node.
//
// A journey is a sequence of named steps against pages of Debian's Chromium, driven by
// playwright-core (never `playwright install`: the browser is /usr/bin/chromium). A step fails
// when its code throws, or when any open page logged a console error, broke the Content
// Security Policy, threw an uncaught exception, answered a request with a 5xx, or opened a
// JavaScript dialog. A failure prints the step, every open page's URL and visible text, saves a
// screenshot, and exits 1.
//
// Environment: BASE_URL (the app), TENANTKIT_TEST_MAILDIR (the SMTP server's Maildir),
// TENANTKIT_TEST_ARTIFACTS (screenshots; default: <tmp>/tenantkit-browser-artifacts),
// TENANTKIT_CHROMIUM (default /usr/bin/chromium).

import { createHmac, randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.TENANTKIT_CHROMIUM || '/usr/bin/chromium';
export const ARTIFACTS =
  process.env.TENANTKIT_TEST_ARTIFACTS || join(tmpdir(), 'tenantkit-browser-artifacts');

// Without the background-networking flags Chromium keeps trying to reach Google's hosts, which
// this machine's closed network refuses.
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** BASE_URL without a trailing slash; fails when it is not set. */
export function baseUrl() {
  const base = process.env.BASE_URL;
  if (!base) throw new Error('BASE_URL is not set (run the journey through cargo nextest / scripts/test)');
  return base.replace(/\/+$/, '');
}

/** A URL on the app: url('/login'). */
/** An environment variable the Rust test that runs this journey must pass. */
export function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (the Rust test that runs this journey passes it)`);
  return value;
}

export function url(path) {
  return baseUrl() + path;
}

/** A short random token, for addresses and names unique to this run. */
export function unique() {
  return `${Date.now().toString(36)}${randomBytes(4).toString('hex')}`;
}

// ---------------------------------------------------------------------------------------------
// Browser, pages and the problems they report

/**
 * Launches headless Chromium. Playwright gives every launch a fresh temporary profile
 * (--user-data-dir) and removes it on close; passing --user-data-dir ourselves is refused by
 * `launch()` (it is `launchPersistentContext`'s job), so the profile is Playwright's.
 */
export async function launch() {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: scripts/test installs Debian's chromium (apt-get install chromium)`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    timeout: 60_000,
  });
}

/** Problems the pages reported that no step has yet failed on. */
const problems = [];
/** Every page opened through newPage, with its label, for failure reports. */
const pages = [];

function recordProblem(label, kind, text) {
  problems.push({ label, kind, text });
}

function describePage(page) {
  try {
    return page.url();
  } catch {
    return '(closed)';
  }
}

/**
 * A new page in a new browser context (its own cookies: a separate person), labelled for
 * reports. Any JavaScript dialog fails the run (the pages need no JavaScript, so a dialog is a
 * bug or an injected script); console errors, CSP violations, uncaught exceptions and 5xx
 * responses fail the step in which they happen.
 */
export async function newPage(browser, label, contextOptions = {}) {
  const context = await browser.newContext({
    viewport: { width: 1280, height: 900 },
    locale: 'en-GB',
    timezoneId: 'UTC',
    ...contextOptions,
  });
  context.setDefaultTimeout(30_000);
  context.setDefaultNavigationTimeout(30_000);
  // Chromium logs CSP violations as console errors too; the event is a second witness that
  // also carries the directive. The binding is called over the DevTools protocol, so the
  // page's own CSP does not apply to it.
  await context.exposeBinding('__tenantkitCspViolation', ({ page }, violation) => {
    recordProblem(label, 'CSP violation', `${violation} on ${describePage(page)}`);
  });
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      const report = `${e.effectiveDirective || e.violatedDirective} blocked ${e.blockedURI || 'inline'}` +
        (e.sample ? ` (${e.sample})` : '') + ` at ${e.sourceFile || e.documentURI}:${e.lineNumber}`;
      window.__tenantkitCspViolation?.(report);
    });
  });
  const page = await context.newPage();
  page.on('dialog', async (dialog) => {
    recordProblem(label, 'JavaScript dialog', `${dialog.type()}: ${dialog.message()} on ${describePage(page)}`);
    await dialog.dismiss().catch(() => {});
  });
  page.on('console', (message) => {
    // "Failed to load resource" is judged from the responses below instead: a page answered
    // with a 4xx (a form re-shown with its errors, say) is the step's to judge, and Chromium's
    // own favicon request is none of the app's business.
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      const where = message.location()?.url || describePage(page);
      const csp = /Content Security Policy/i.test(message.text());
      recordProblem(label, csp ? 'CSP violation' : 'console error', `${message.text()} (${where})`);
    }
  });
  page.on('pageerror', (error) => {
    recordProblem(label, 'uncaught exception', `${error.message} on ${describePage(page)}`);
  });
  page.on('response', (response) => {
    const request = response.request();
    const document = request.isNavigationRequest();
    if (response.status() >= 500 || (!document && response.status() >= 400)) {
      recordProblem(label, document ? 'server error' : 'broken resource', `${response.status()} ${request.method()} ${response.url()}`);
    }
  });
  page.on('requestfailed', (request) => {
    const reason = request.failure()?.errorText ?? 'failed';
    // Leaving a page aborts what it still loads (and a click supersedes a navigation).
    if (reason !== 'net::ERR_ABORTED') {
      recordProblem(label, 'request failed', `${request.method()} ${request.url()}: ${reason}`);
    }
  });
  pages.push({ label, page });
  return page;
}

/** Throws if any page reported a problem since the last check (and forgets them). */
export function assertNoProblems() {
  if (problems.length === 0) return;
  const list = problems.splice(0).map((p) => `  [${p.label}] ${p.kind}: ${p.text}`).join('\n');
  throw new Error(`the pages reported problems:\n${list}`);
}

// ---------------------------------------------------------------------------------------------
// Steps and failure reports

let stepCount = 0;

async function visibleText(page) {
  try {
    const text = await page.locator('body').innerText({ timeout: 2_000 });
    return text.length > 4_000 ? `${text.slice(0, 4_000)}\n… (${text.length - 4_000} more characters)` : text;
  } catch (e) {
    return `(no text: ${e.message.split('\n')[0]})`;
  }
}

function slug(text) {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 60);
}

/** Prints what went wrong and where, screenshots every open page, and exits 1. */
async function failStep(name, error) {
  const lines = [`\n✗ step ${stepCount} failed: ${name}`, `  ${String(error?.stack || error).replace(/\n/g, '\n  ')}`];
  for (const { label, page } of pages) {
    if (page.isClosed()) continue;
    lines.push(`\n  [${label}] url: ${page.url()}`);
    lines.push(`  [${label}] visible text:\n    ${(await visibleText(page)).replace(/\n/g, '\n    ')}`);
    try {
      const file = await shot(page, `FAILED-${String(stepCount).padStart(2, '0')}-${slug(name)}-${slug(label)}`);
      lines.push(`  [${label}] screenshot: ${file}`);
    } catch {
      // a screenshot is a convenience; the report above is what matters
    }
  }
  const pending = problems.splice(0);
  if (pending.length) {
    lines.push('\n  problems reported by the pages:');
    for (const p of pending) lines.push(`    [${p.label}] ${p.kind}: ${p.text}`);
  }
  console.error(lines.join('\n'));
  process.exit(1);
}

/** Runs one named step; on failure reports and exits. Returns what `fn` returns. */
export async function step(name, fn) {
  stepCount += 1;
  const started = Date.now();
  console.log(`▶ ${stepCount}. ${name}`);
  let result;
  try {
    result = await fn();
    assertNoProblems();
  } catch (error) {
    await failStep(name, error);
  }
  console.log(`  ✓ ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return result;
}

/** Runs a whole journey: launches the browser, runs `fn(browser)`, closes, reports. */
export async function journey(name, fn) {
  const started = Date.now();
  let browser;
  try {
    browser = await step('launch Chromium', launch);
    await fn(browser);
  } catch (error) {
    // only errors outside steps land here (steps exit on their own)
    await failStep('(outside any step)', error);
  }
  await browser?.close().catch(() => {});
  console.log(`✓ ${name}: ${stepCount} steps in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots in ${ARTIFACTS}`);
}

/** Full-page screenshot into the artifacts folder; returns its path. */
export async function shot(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const file = join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true, timeout: 10_000 });
  return file;
}

// ---------------------------------------------------------------------------------------------
// Assertions (playwright-core has no `expect`: these wait, then throw with what they saw)

/** Polls `probe` until it returns a truthy value; throws `describe()` after `timeoutMs`. */
export async function until(probe, describe, { timeoutMs = 15_000, intervalMs = 100 } = {}) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      last = await probe();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) {
      const seen = last instanceof Error ? ` (last error: ${last.message.split('\n')[0]})` : '';
      throw new Error(`${typeof describe === 'function' ? await describe() : describe}${seen}`);
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Waits until the page is at `path` (a string: pathname equality; a RegExp: tested on the pathname). */
export async function expectPath(page, path, { timeoutMs = 30_000 } = {}) {
  const matches = () => {
    const pathname = new URL(page.url()).pathname;
    return typeof path === 'string' ? pathname === path : path.test(pathname);
  };
  await until(matches, () => `expected to be at ${path}, but the page is at ${page.url()}`, { timeoutMs });
  await page.waitForLoadState('load');
}

/** Waits until `locator` (first match) is visible and its text contains `text`. */
export async function expectText(locator, text, { timeoutMs = 15_000 } = {}) {
  await until(
    async () => (await locator.first().innerText({ timeout: 1_000 })).includes(text),
    async () => {
      const count = await locator.count().catch(() => 0);
      const seen = count ? await locator.first().innerText({ timeout: 1_000 }).catch(() => '?') : '(no such element)';
      return `expected ${locator} to contain ${JSON.stringify(text)}, saw ${JSON.stringify(seen)}`;
    },
    { timeoutMs },
  );
}

/** Waits until `locator` matches at least one visible element. */
export async function expectVisible(locator, { timeoutMs = 15_000 } = {}) {
  try {
    await locator.first().waitFor({ state: 'visible', timeout: timeoutMs });
  } catch {
    throw new Error(`expected ${locator} to be visible; it matched ${await locator.count()} element(s)`);
  }
}

/** Waits until an input's value equals `value`. */
export async function expectValue(locator, value, { timeoutMs = 15_000 } = {}) {
  await until(
    async () => (await locator.inputValue({ timeout: 1_000 })) === value,
    async () => `expected ${locator} to have value ${JSON.stringify(value)}, it has ${JSON.stringify(await locator.inputValue({ timeout: 1_000 }).catch(() => '(no such element)'))}`,
    { timeoutMs },
  );
}

/** Clicks a button (by its accessible name) and waits for the navigation it causes. */
export async function submit(page, buttonName, scope = page) {
  const button = scope.getByRole('button', { name: buttonName, exact: true });
  await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), button.click()]);
}

// ---------------------------------------------------------------------------------------------
// Mail: the Maildir that the test SMTP server (aiosmtpd) writes, shared by every test.

/** The first header value named `name` (case-insensitive), or ''. */
function header(headers, name) {
  return headers.get(name.toLowerCase())?.[0] ?? '';
}

/** Splits an entity (message or MIME part, a latin1 string of raw bytes) into headers and body. */
function splitEntity(raw) {
  const match = /\r?\n\r?\n/.exec(raw);
  const head = match ? raw.slice(0, match.index) : raw;
  const body = match ? raw.slice(match.index + match[0].length) : '';
  const headers = new Map();
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (!headers.has(name)) headers.set(name, []);
    headers.get(name).push(value);
  }
  return { headers, body };
}

/** A Content-Type value: { type: 'text/plain', params: { charset: 'utf-8' } }. */
function parseContentType(value) {
  const [type, ...rest] = (value || 'text/plain').split(';');
  const params = {};
  for (const param of rest) {
    const eq = param.indexOf('=');
    if (eq < 0) continue;
    let v = param.slice(eq + 1).trim();
    if (v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1).replace(/\\(.)/g, '$1');
    params[param.slice(0, eq).trim().toLowerCase()] = v;
  }
  return { type: type.trim().toLowerCase(), params };
}

/** Quoted-printable (RFC 2045) to bytes. */
export function decodeQuotedPrintable(text) {
  const unfolded = text.replace(/=\r?\n/g, '');
  const bytes = [];
  for (let i = 0; i < unfolded.length; i++) {
    const c = unfolded[i];
    if (c === '=' && /^[0-9A-Fa-f]{2}$/.test(unfolded.slice(i + 1, i + 3))) {
      bytes.push(parseInt(unfolded.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      bytes.push(unfolded.charCodeAt(i) & 0xff);
    }
  }
  return Buffer.from(bytes);
}

function decodeBody(body, encoding, charset) {
  const cte = (encoding || '7bit').toLowerCase();
  const bytes =
    cte === 'base64'
      ? Buffer.from(body.replace(/\s+/g, ''), 'base64')
      : cte === 'quoted-printable'
        ? decodeQuotedPrintable(body)
        : Buffer.from(body, 'latin1');
  try {
    return new TextDecoder(charset || 'utf-8').decode(bytes);
  } catch {
    return bytes.toString('utf8');
  }
}

/** RFC 2047 encoded words (=?utf-8?B?…?= / =?utf-8?Q?…?=) in a header value. */
export function decodeHeader(value) {
  return value
    .replace(/(=\?[^?]+\?[BbQq]\?[^?]*\?=)\s+(?==\?)/g, '$1')
    .replace(/=\?([^?]+)\?([BbQq])\?([^?]*)\?=/g, (_, charset, enc, data) => {
      const bytes =
        enc.toUpperCase() === 'B'
          ? Buffer.from(data, 'base64')
          : decodeQuotedPrintable(data.replace(/_/g, ' '));
      try {
        return new TextDecoder(charset).decode(bytes);
      } catch {
        return bytes.toString('utf8');
      }
    });
}

/** The raw parts of a multipart body, each with its lines joined by `newline`. */
function multipartParts(body, boundary, newline) {
  const delimiter = `--${boundary}`;
  const parts = [];
  let current = null;
  for (const line of body.split(/\r?\n/)) {
    if (line.startsWith(delimiter)) {
      if (current) parts.push(current.join(newline));
      if (line.startsWith(`${delimiter}--`)) break;
      current = [];
    } else if (current) {
      current.push(line);
    }
  }
  return parts;
}

/** The text/plain parts of an entity (recursing into multiparts); HTML only when there is no text. */
function textOf(raw) {
  const { headers, body } = splitEntity(raw);
  const { type, params } = parseContentType(header(headers, 'content-type'));
  if (type.startsWith('multipart/') && params.boundary) {
    const texts = multipartParts(body, params.boundary, '\n').map(textOf);
    const plain = texts.filter((t) => t.kind === 'plain');
    const chosen = plain.length ? plain : texts.filter((t) => t.kind === 'html');
    return { kind: chosen[0]?.kind ?? 'none', text: chosen.map((t) => t.text).join('\n') };
  }
  const encoding = header(headers, 'content-transfer-encoding');
  if (type === 'text/plain') return { kind: 'plain', text: decodeBody(body, encoding, params.charset) };
  if (type === 'text/html') {
    const html = decodeBody(body, encoding, params.charset);
    const text = html
      .replace(/<a\s[^>]*href="([^"]*)"[^>]*>/gi, ' $1 ')
      .replace(/<[^>]+>/g, ' ')
      .replace(/&amp;/g, '&');
    return { kind: 'html', text };
  }
  return { kind: 'none', text: '' };
}

/** Parses one raw message (bytes) into { headers, subject, to, text }. */
export function parseMessage(bytes) {
  const raw = Buffer.isBuffer(bytes) ? bytes.toString('latin1') : bytes;
  const { headers } = splitEntity(raw);
  return {
    headers,
    subject: decodeHeader(header(headers, 'subject')),
    to: decodeHeader(header(headers, 'to')),
    text: textOf(raw).text.replace(/\r\n/g, '\n'),
  };
}

function maildir() {
  const dir = process.env.TENANTKIT_TEST_MAILDIR;
  if (!dir) throw new Error('TENANTKIT_TEST_MAILDIR is not set (scripts/test exports it)');
  return dir;
}

/** Every message in the Maildir (new/ and cur/), oldest first, parsed, with its file and mtime. */
export function readMaildir(dir = maildir()) {
  const messages = [];
  for (const sub of ['new', 'cur']) {
    let names = [];
    try {
      names = readdirSync(join(dir, sub));
    } catch {
      continue;
    }
    for (const name of names) {
      const file = join(dir, sub, name);
      try {
        messages.push({ file, mtime: statSync(file).mtimeMs, ...parseMessage(readFileSync(file)) });
      } catch {
        // being written or moved right now: the next poll sees it
      }
    }
  }
  return messages.sort((a, b) => a.mtime - b.mtime);
}

function addressedTo(message, recipient) {
  const wanted = recipient.toLowerCase();
  // The envelope recipients too (aiosmtpd records them as X-RcptTo).
  const fields = ['to', 'cc', 'x-rcptto'].flatMap((name) => message.headers.get(name) ?? []);
  return fields.some((value) => decodeHeader(value).toLowerCase().includes(wanted));
}

/**
 * Waits for a message to `recipient` (always unique per run: the Maildir is shared by every
 * test) whose subject includes `subjectIncludes` and whose text includes `textIncludes` (both
 * optional), skipping files in `exclude`; returns the newest match:
 * { file, subject, to, text, headers }.
 */
export async function waitForMessage(recipient, { subjectIncludes, textIncludes, exclude = new Set(), timeoutMs = 30_000, dir } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const all = readMaildir(dir ?? maildir());
    const mine = all.filter((m) => addressedTo(m, recipient));
    const matching = mine.filter(
      (m) =>
        !exclude.has(m.file) &&
        (!subjectIncludes || m.subject.includes(subjectIncludes)) &&
        (!textIncludes || m.text.includes(textIncludes)),
    );
    if (matching.length) return matching[matching.length - 1];
    if (Date.now() >= deadline) {
      const wanted = [subjectIncludes && `subject including ${JSON.stringify(subjectIncludes)}`, textIncludes && `text including ${JSON.stringify(textIncludes)}`]
        .filter(Boolean)
        .join(' and ');
      const seen = mine.map((m) => `    ${JSON.stringify(m.subject)}${exclude.has(m.file) ? ' (already used)' : ''}`).join('\n');
      throw new Error(
        `no email to ${recipient}${wanted ? ` with ${wanted}` : ''} within ${timeoutMs / 1000} s ` +
          `(${all.length} messages in the Maildir; ${mine.length} to this address${mine.length ? ':\n' + seen : ''})`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Like waitForMessage, returning the decoded text only. */
export async function waitForMail(recipient, options = {}) {
  return (await waitForMessage(recipient, options)).text;
}

/**
 * The first URL in `text` containing `path`. With `base` (default: BASE_URL when set) the link
 * must be on that origin: the app puts its public URL in emails, which in tests is the bound
 * address, so a link elsewhere is a bug.
 */
export function linkFrom(text, path, { base = process.env.BASE_URL } = {}) {
  const found = (text.match(/https?:\/\/[^\s<>"')\]]+/g) || []).find((u) => u.includes(path));
  if (!found) throw new Error(`no link containing ${JSON.stringify(path)} in the email:\n${text}`);
  if (base && new URL(found).origin !== new URL(base).origin) {
    throw new Error(`the email links to ${found}, not to the public URL ${base}`);
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// TOTP (RFC 6238 over RFC 4226: HMAC-SHA1, 6 digits, 30 s steps)

/** RFC 4648 base32 (spaces, dashes and padding ignored, any case) to bytes. */
export function base32Decode(text) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  const clean = text.toUpperCase().replace(/[\s=-]/g, '');
  let bits = 0;
  let value = 0;
  const out = [];
  for (const c of clean) {
    const index = alphabet.indexOf(c);
    if (index < 0) throw new Error(`not base32: ${JSON.stringify(c)} in ${JSON.stringify(text)}`);
    value = (value << 5) | index;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** The 30-second time step `seconds` falls in. */
export function totpStep(seconds = Date.now() / 1000) {
  return Math.floor(seconds / 30);
}

/** The TOTP code for `base32Secret` at unix time `seconds` (default now). */
export function totp(base32Secret, seconds = Date.now() / 1000, { digits = 6 } = {}) {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(totpStep(seconds)));
  const mac = createHmac('sha1', base32Decode(base32Secret)).update(counter).digest();
  const offset = mac[mac.length - 1] & 0x0f;
  const binary = (mac.readUInt32BE(offset) & 0x7fffffff) % 10 ** digits;
  return String(binary).padStart(digits, '0');
}

// ---------------------------------------------------------------------------------------------
// More assertions (appended for tests/browser/team.mjs; generic)

/** Waits until `locator` matches no visible element (none at all, or only hidden ones). */
export async function expectHidden(locator, { timeoutMs = 15_000 } = {}) {
  await until(
    async () => {
      const count = await locator.count();
      for (let i = 0; i < count; i++) {
        if (await locator.nth(i).isVisible()) return false;
      }
      return true;
    },
    async () => `expected ${locator} to match no visible element; it matched ${await locator.count().catch(() => '?')}`,
    { timeoutMs },
  );
}

/** Waits until no element matched by `locator` has text containing `text`. */
export async function expectNoText(locator, text, { timeoutMs = 15_000 } = {}) {
  await until(
    async () => (await locator.allInnerTexts()).every((t) => !t.includes(text)),
    async () =>
      `expected ${locator} not to contain ${JSON.stringify(text)}, saw ${JSON.stringify(await locator.allInnerTexts().catch(() => []))}`,
    { timeoutMs },
  );
}

// ---------------------------------------------------------------------------------------------
// Locators by accessible name, and following emailed links

export const field = (page, label) => page.getByLabel(label, { exact: true });
export const link = (page, name) => page.getByRole('link', { name, exact: true });
export const button = (page, name) => page.getByRole('button', { name, exact: true });
export const heading = (page, text) => page.getByRole('heading').filter({ hasText: text });

/**
 * A reader of emailed links for one journey: `(recipient, path)` gives the link at `path` from
 * the newest email to `recipient` not followed yet, so a later wait for the same kind of
 * email finds a new one.
 */
export function emailLinks() {
  const used = new Set();
  return async (recipient, path) => {
    const started = Date.now();
    const message = await waitForMessage(recipient, { textIncludes: path, exclude: used, timeoutMs: 60_000 });
    used.add(message.file);
    console.log(`  email to ${recipient} (waited ${((Date.now() - started) / 1000).toFixed(1)} s): ${JSON.stringify(message.subject)}`);
    return linkFrom(message.text, path);
  };
}

// Signs `person` ({name, email, password}) up for a new organisation through the form; the
// page ends on "check your inbox".
export async function signUp(page, organisation, person) {
  await page.goto(url('/signup'));
  await field(page, 'Organisation name').fill(organisation);
  await field(page, 'Your name').fill(person.name);
  await field(page, 'Email').fill(person.email);
  await field(page, 'Password').fill(person.password);
  await submit(page, 'Create account');
  await expectPath(page, '/signup/check-inbox');
}

// ---------------------------------------------------------------------------------------------
// Every part of a message (appended for tests/browser/injection.mjs; generic)

/**
 * The leaf parts of one raw message (bytes or a latin1 string), recursing into multiparts, in
 * order: [{ type: 'text/html', text }] with each body decoded (transfer encoding and charset).
 */
export function messageParts(bytes) {
  const raw = Buffer.isBuffer(bytes) ? bytes.toString('latin1') : bytes;
  const { headers, body } = splitEntity(raw);
  const { type, params } = parseContentType(header(headers, 'content-type'));
  if (type.startsWith('multipart/') && params.boundary) {
    return multipartParts(body, params.boundary, '\r\n').flatMap(messageParts);
  }
  return [{ type, text: decodeBody(body, header(headers, 'content-transfer-encoding'), params.charset) }];
}
