// Injection and escaping corpus, in headless Chromium: every classic payload of
// injection-corpus.json goes through every text field a user or an admin can enter that is
// later rendered (organisation and display names, email local parts, invitations, the
// invitee's name, the new email address, the email typed at a failed login, the browser's
// User-Agent, file and folder names, API key labels, every admin reason, the entitlement
// overrides, the search and filter boxes), and each page, email and CSV export that shows it
// is checked:
//
// - pages and emails are loaded in Chromium with the Content Security Policy bypassed, so
//   that escaping alone is judged (the CSP, which allows no inline script, is a second layer
//   and must not be what saves us). `window.__xss(tag)` records a call, a dialog hook records
//   `alert(tag)`, and the DOM is searched for what an escape would have created (event
//   handler attributes, inline scripts, `javascript:` URLs, frames, autofocus). The payload's
//   text must be shown literally somewhere on the page, so we know it was rendered, not
//   dropped;
// - emails (the HTML part, from the Maildir) go through `page.setContent` with the same hooks;
// - CSV exports are parsed (RFC 4180) and no cell may begin with = + - @ TAB or CR, while
//   the payload is still there (prefixed with ').
//
// Every payload names its field (`TAG` becomes `<field>.<payload id>`), so whatever fires
// says where it came from. Findings are collected, not fatal, so one run reports them all; the
// last phase prints them with the coverage summary and fails.
//
// Five phases (PHASE=owners-1|owners-2|admin|admin-2|final), each one `node` run within the
// browser time limit, sharing STATE_FILE (JSON): owners-1 and owners-2 (half the corpus each:
// owners sign up, verify, invite, have a teammate accept, upload, create API keys, log in from
// odd browsers, ask for emails, fail a login; the second also signs people up with payload
// addresses and opens files carrying scripts), admin (those people log in; a collector accepts
// every invitation; the admin enrols two-factor, changes plans, overrides, suspends,
// reactivates and impersonates with payload reasons), admin-2 (the admin ends sessions, locks,
// unlocks and resets teammates, retries and discards dead jobs, searches, filters, reads every
// list and exports the audit CSV), final (owners read and export their audit log; query
// strings the pages may echo; the summary). tests/tests/injection.rs marks the payload
// addresses verified after owners-2 (mail to them cannot always be sent) and lets the mail
// that failed to them die before admin-2.
//
// Environment: PHASE, STATE_FILE, RUN (unique per run: addresses are @r<RUN>.inj.test),
// ADMIN_EMAIL, ADMIN_PASSWORD, ADMIN_NAME (its display name: payloads), COLLECTOR_EMAIL,
// COLLECTOR_PASSWORD (a user invited into every organisation), besides BASE_URL,
// TENANTKIT_TEST_MAILDIR and TENANTKIT_TEST_ARTIFACTS.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';

import {
  expectPath,
  field,
  journey,
  linkFrom,
  messageParts,
  readMaildir,
  shot,
  step,
  submit,
  totp,
  totpStep,
  until,
  url,
  waitForMessage,
  required,
} from './lib.mjs';

const PHASE = required('PHASE');
const STATE_FILE = required('STATE_FILE');
const RUN = required('RUN');
const DOMAIN = `r${RUN}.inj.test`;
const PASSWORD = `injection passphrase ${RUN}`;
const admin = { email: required('ADMIN_EMAIL'), password: required('ADMIN_PASSWORD'), name: required('ADMIN_NAME') };
const collector = { email: required('COLLECTOR_EMAIL'), password: required('COLLECTOR_PASSWORD') };
/** People handled at once: a 2-core machine runs the app, the worker and Chromium. */
const CONCURRENCY = 3;

const CORPUS = JSON.parse(readFileSync(new URL('./injection-corpus.json', import.meta.url), 'utf8')).payloads;

// ---------------------------------------------------------------------------------------------
// State shared by the phases

const state =
  existsSync(STATE_FILE) && readFileSync(STATE_FILE, 'utf8').trim()
    ? JSON.parse(readFileSync(STATE_FILE, 'utf8'))
    : {
        owners: {},
        emailUsers: {},
        loginFailures: {},
        reasons: {},
        userReasons: {},
        jobReasons: {},
        admin: {},
        coverage: {},
        hits: {},
        findings: [],
        routes: {},
        emails: {},
        csv: { files: 0, cells: 0, neutralised: 0 },
        inspections: 0,
      };

function save() {
  writeFileSync(STATE_FILE, JSON.stringify(state, null, 1));
}

// ---------------------------------------------------------------------------------------------
// Payloads and what the app keeps of them

/** The payload for `fieldName`: TAG becomes `<field>.<id>`. */
const P = (fieldName, entry) => entry.payload.replaceAll('TAG', `${fieldName}.${entry.id}`);
/** The payload as an address: no spaces are allowed, so `/` separates (as in `<svg/onload=…>`). */
const asEmail = (fieldName, entry) => `${P(fieldName, entry).replace(/ /g, '/')}@${DOMAIN}`;
/** What a text input keeps of typed text (Chromium strips CR and LF) and the server's trim. */
const typedText = (value) => value.replace(/[\r\n]/g, '').trim();
/** What a JSON value shows of a string inside it. */
const inJson = (value) => JSON.stringify(value).slice(1, -1);
/** A readable label for findings and the summary. */
const show = (value) => JSON.stringify(value);
const slug = (text) => text.toLowerCase().replace(/[^a-z0-9]+/g, '-');

/** Expected text on a page: `key` (the tag) counts where its payload was seen. */
const E = (key, text) => ({ key, text });
/** An owner's organisation and name as expected texts (a refused payload left a plain one). */
const orgOf = (owner) => E(owner.orgPlain ? 'org.plain' : `org.${owner.id}`, owner.org);
const nameOf = (owner) => E(owner.namePlain ? 'name.plain' : `name.${owner.id}`, owner.name);
const inviteeOf = (owner) => E(owner.invitee.namePlain ? 'invitee_name.plain' : `invitee_name.${owner.id}`, owner.invitee.name);

/** Records what a field did with a payload: accepted, refused (with why) or not enterable. */
function cover(fieldName, entry, outcome) {
  state.coverage[fieldName] ??= {};
  state.coverage[fieldName][entry.id] = outcome;
}

function finding(kind, where, detail) {
  state.findings.push({ phase: PHASE, kind, where, detail });
  console.log(`  ✗ FINDING [${kind}] ${where}: ${detail}`);
}

// ---------------------------------------------------------------------------------------------
// Pages with the hooks

const openPages = [];
const canaryHits = new Set();

function where(page) {
  return page.__where ?? page.url();
}

/** A script or dialog ran: a finding naming the tag (field.payload), unless it is a canary. */
function fired(page, tag, how) {
  if (tag.startsWith('canary.')) {
    canaryHits.add(tag);
    return;
  }
  finding('EXECUTED', where(page), `${how} fired with ${show(tag)} (page ${page.url()})`);
}

/**
 * A page in a browser context of its own (its own cookies: a separate person), with the CSP
 * bypassed and the hooks installed: `window.__xss(tag)` and any dialog are recorded; uncaught
 * exceptions, console errors, 5xx answers and failed subresources (an injected `<img src=x>`
 * asks for /x) are findings too.
 */
async function openPage(browser, label, { userAgent } = {}) {
  const context = await browser.newContext({
    bypassCSP: true,
    viewport: { width: 1280, height: 900 },
    locale: 'en-GB',
    timezoneId: 'UTC',
    ...(userAgent === undefined ? {} : { userAgent }),
  });
  context.setDefaultTimeout(30_000);
  context.setDefaultNavigationTimeout(30_000);
  await context.exposeBinding('__injectionFired', ({ page }, tag, how) => fired(page, String(tag), String(how)));
  await context.addInitScript(() => {
    const report = (tag, how) => {
      try {
        window.__injectionFired(tag, how);
      } catch {
        // the binding is always there; a failure here must not hide the page's own behaviour
      }
    };
    Object.defineProperty(window, '__xss', {
      value: (tag) => report(String(tag), 'window.__xss marker'),
      writable: false,
      configurable: false,
    });
  });
  const page = await context.newPage();
  page.__label = label;
  page.on('dialog', async (dialog) => {
    fired(page, dialog.message(), `${dialog.type()}() dialog`);
    await dialog.dismiss().catch(() => {});
  });
  page.on('pageerror', (error) => finding('uncaught exception', where(page), error.message));
  page.on('console', (message) => {
    if (message.type() === 'error' && !message.text().startsWith('Failed to load resource')) {
      finding('console error', where(page), message.text());
    }
  });
  page.on('response', (response) => {
    const request = response.request();
    const document = request.isNavigationRequest();
    // XHR answers are the script's to judge (a refused upload is a 422 shown in the page).
    if (['xhr', 'fetch'].includes(request.resourceType())) return;
    if (response.status() >= 500 || (!document && response.status() >= 400)) {
      finding(document ? 'server error' : 'broken resource', where(page), `${response.status()} ${request.method()} ${response.url()}`);
    }
  });
  openPages.push(page);
  return page;
}

async function closePage(page) {
  openPages.splice(openPages.indexOf(page), 1);
  await page.context().close().catch(() => {});
}

/** Lets load-time handlers (onerror, onload, autofocus → onfocus) run. */
async function settle(page) {
  await page.evaluate(() => new Promise((resolve) => requestAnimationFrame(() => setTimeout(resolve, 30))));
}

/** Removes what HTML cannot show (NUL is dropped or becomes U+FFFD) and folds whitespace. */
const fold = (text) => String(text).replace(/[\u0000\ufffd]/g, '').replace(/\s+/g, ' ').trim();

/** The route a URL shows, ids and queries folded, for the summary. */
function routeOf(address) {
  if (address.startsWith('about:')) return null;
  const { pathname, searchParams } = new URL(address);
  const known = pathname.replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, ':id');
  const path = /^[a-z0-9/:_.-]*$/i.test(known) ? known : '/:payload (not found)';
  const keys = [...new Set(searchParams.keys())].sort();
  return keys.length ? `${path}?${keys.join('&')}` : path;
}

/**
 * What an escape would have created in the page's DOM (event handler attributes, inline
 * scripts, script URLs, frames, autofocus, a refresh elsewhere), and all of its text: the
 * title, the rendered and the raw text, form values and options.
 */
async function scan(page) {
  return page.evaluate(() => {
    const bad = [];
    const snippet = (el) => el.outerHTML.slice(0, 200);
    for (const el of document.querySelectorAll('*')) {
      const tag = el.tagName.toLowerCase();
      for (const attr of el.attributes) {
        const name = attr.name.toLowerCase();
        if (name.startsWith('on')) bad.push(`event handler attribute ${name}: ${snippet(el)}`);
        else if (name === 'autofocus') bad.push(`autofocus attribute: ${snippet(el)}`);
        else if (
          ['href', 'src', 'action', 'formaction', 'xlink:href', 'data', 'srcdoc', 'poster'].includes(name) &&
          /^\s*(javascript|vbscript|data\s*:\s*text\/html)/i.test(attr.value)
        ) {
          bad.push(`script URL in ${name}: ${snippet(el)}`);
        }
      }
      if (tag === 'script' && !el.hasAttribute('src')) bad.push(`inline script: ${snippet(el)}`);
      if (['iframe', 'frame', 'object', 'embed', 'base', 'portal'].includes(tag)) bad.push(`<${tag}>: ${snippet(el)}`);
      if (tag === 'meta' && /refresh/i.test(el.getAttribute('http-equiv') || '') && /url\s*=/i.test(el.getAttribute('content') || '')) {
        bad.push(`meta refresh to a URL: ${snippet(el)}`);
      }
    }
    const body = document.body;
    return {
      bad,
      text: [
        document.title,
        body ? body.innerText : '',
        body ? body.textContent : '',
        ...[...document.querySelectorAll('input:not([type=hidden]), textarea')].map((e) => e.value),
        ...[...document.querySelectorAll('option')].map((o) => o.textContent),
      ].join('\n'),
    };
  });
}

/**
 * Checks the page as it is now: nothing an escape would create is in the DOM, and every
 * expected text is shown (in text, the title, a form value or an option). Hooks report
 * execution on their own. Returns the page's text (for checks across pages).
 */
async function inspect(page, label, expected = []) {
  page.__where = label;
  await settle(page);
  const seen = await scan(page);
  for (const problem of seen.bad) finding('INJECTED MARKUP', label, problem);
  const text = fold(seen.text);
  for (const { key, text: wanted } of expected) {
    if (wanted === undefined || wanted === null) continue;
    if (text.includes(fold(wanted))) {
      state.hits[key] = (state.hits[key] ?? 0) + 1;
    } else {
      finding('NOT SHOWN LITERALLY', label, `${key}: expected the text ${show(wanted)} on the page (${page.url()})`);
    }
  }
  state.inspections += 1;
  const route = routeOf(page.url());
  if (route) state.routes[route] = (state.routes[route] ?? 0) + 1;
  return text;
}

/** Navigates to `path` and inspects the page; with `status`, the answer must have it. */
async function visit(page, path, label, expected = [], { status } = {}) {
  page.__where = label;
  const response = await page.goto(url(path), { waitUntil: 'load' });
  if (status !== undefined && response.status() !== status) {
    throw new Error(`GET ${path} (${label}) answered ${response.status()}, expected ${status}`);
  }
  // A 5xx is a finding already (the response hook); its error page shows nothing typed.
  return inspect(page, label, response.status() >= 500 ? [] : expected);
}

/** Fills `locator`, or records that the field cannot take the payload (and says so). */
async function enter(locator, value, fieldName, entry) {
  try {
    await locator.fill(value);
    return true;
  } catch (error) {
    cover(fieldName, entry, `not enterable in Chromium: ${error.message.split('\n')[0]}`);
    return false;
  }
}

/** The field errors and page error a form shows, as one line. */
async function formErrors(page) {
  const texts = await page.locator('main .field-error, main .error').allInnerTexts();
  return texts.map((t) => t.trim()).join(' / ') || '(no message)';
}

async function logIn(page, email, password, label) {
  page.__where = label;
  await page.goto(url('/login'));
  await field(page, 'Email').fill(email);
  await field(page, 'Password').fill(password);
  await submit(page, 'Log in');
}

/** A JSON API call with the page's session (its context's cookies), the CSRF token added. */
async function api(page, method, path, { data, headers = {} } = {}) {
  const request = page.context().request;
  const me = await request.get(url('/api/v1/me'));
  if (me.status() !== 200) throw new Error(`GET /api/v1/me answered ${me.status()}: ${await me.text()}`);
  const response = await request.fetch(url(`/api/v1${path}`), {
    method,
    headers: { accept: 'application/json', 'x-csrf-token': (await me.json()).csrf_token, ...headers },
    data,
    failOnStatusCode: false,
  });
  const text = await response.text();
  let body = text;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    // CSV and other text stay text
  }
  return { status: response.status(), headers: response.headers(), body, text };
}

// ---------------------------------------------------------------------------------------------
// Emails

/**
 * Renders the HTML part of `message` in Chromium (`mailPage.setContent`, same hooks) and checks
 * it like a page; `inSubject` must appear in the decoded subject.
 */
async function renderEmail(mailPage, message, label, expected, inSubject = []) {
  const parts = messageParts(readFileSync(message.file));
  const html = parts.find((part) => part.type === 'text/html');
  if (!html) {
    finding('EMAIL WITHOUT HTML', label, `parts: ${parts.map((p) => p.type).join(', ')}`);
    return;
  }
  mailPage.__where = label;
  await mailPage.setContent(html.text, { waitUntil: 'load' });
  await inspect(mailPage, label, expected);
  for (const { key, text } of inSubject) {
    if (fold(message.subject).includes(fold(text))) state.hits[key] = (state.hits[key] ?? 0) + 1;
    else finding('NOT SHOWN LITERALLY', `${label} (subject)`, `${key}: expected ${show(text)} in the subject ${show(message.subject)}`);
  }
  const kinds = ['Confirm your email address', 'Welcome to Tenantkit', 'invited you to join', 'Reset your Tenantkit password', 'You already have a Tenantkit account', 'Confirm your new email address'];
  const kind = kinds.find((k) => message.subject.includes(k)) ?? message.subject;
  state.emails[kind] = (state.emails[kind] ?? 0) + 1;
}

// ---------------------------------------------------------------------------------------------
// CSV

/** RFC 4180: rows of cells, quoted fields unquoted ("" is "). */
function parseCsv(text) {
  const rows = [];
  let row = [];
  let cell = '';
  let quoted = false;
  let fresh = true;
  for (let i = 0; i < text.length; i += 1) {
    const c = text[i];
    if (quoted) {
      if (c === '"' && text[i + 1] === '"') {
        cell += '"';
        i += 1;
      } else if (c === '"') {
        quoted = false;
      } else {
        cell += c;
      }
    } else if (c === '"' && fresh) {
      quoted = true;
      fresh = false;
    } else if (c === ',') {
      row.push(cell);
      cell = '';
      fresh = true;
    } else if (c === '\n' || (c === '\r' && text[i + 1] === '\n')) {
      if (c === '\r') i += 1;
      row.push(cell);
      rows.push(row);
      row = [];
      cell = '';
      fresh = true;
    } else {
      cell += c;
      fresh = false;
    }
  }
  if (cell !== '' || row.length) {
    row.push(cell);
    rows.push(row);
  }
  return rows;
}

const FORMULA_START = /^[=+\-@\t\r]/;

/**
 * No cell of the CSV starts a formula; every row has the header's width; each expected value
 * is a cell of its own (as stored, or with the ' that neutralises a formula).
 */
function checkCsv(text, label, expected) {
  const rows = parseCsv(text);
  if (!rows.length) {
    finding('CSV', label, 'the export is empty');
    return;
  }
  const header = rows[0];
  state.csv.files += 1;
  for (const [r, row] of rows.entries()) {
    if (row.length !== header.length) {
      finding('CSV STRUCTURE', label, `row ${r + 1} has ${row.length} cells, the header ${header.length}: ${show(row.join(' | ').slice(0, 200))}`);
    }
    for (const [c, cell] of row.entries()) {
      state.csv.cells += 1;
      if (FORMULA_START.test(cell)) {
        finding('CSV FORMULA', label, `row ${r + 1}, column ${header[c] ?? c + 1} starts with ${show(cell[0])}: ${show(cell.slice(0, 120))}`);
      }
      if (/^'[=+\-@\t\r]/.test(cell)) state.csv.neutralised += 1;
    }
  }
  const cells = new Set(rows.flat());
  for (const { key, text: value } of expected) {
    if (value === undefined || value === null) continue;
    if (cells.has(value) || cells.has(`'${value}`)) {
      state.hits[key] = (state.hits[key] ?? 0) + 1;
    } else {
      const near = [...cells].find((cell) => cell.includes(value.slice(-20)));
      finding('NOT IN CSV', label, `${key}: no cell is ${show(value)} or ${show(`'${value}`)}${near ? ` (closest: ${show(near)})` : ''}`);
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Helpers for the flows

/** Runs `fn` on each item, `size` at a time; the first error fails the whole pool. */
async function pool(items, size, fn) {
  const queue = [...items];
  const workers = Array.from({ length: Math.min(size, queue.length) }, async () => {
    while (queue.length) {
      const item = queue.shift();
      try {
        await fn(item);
      } catch (error) {
        error.message = `[${item.id ?? item}] ${error.message}`;
        throw error;
      }
    }
  });
  await Promise.all(workers);
}

/** A step that screenshots every open page when it fails. */
async function phaseStep(name, fn) {
  return step(name, async () => {
    try {
      return await fn();
    } catch (error) {
      for (const page of openPages) {
        if (!page.isClosed()) {
          await shot(page, `FAILED-${slug(name).slice(0, 40)}-${slug(page.__label ?? 'page')}`).catch(() => {});
        }
      }
      throw error;
    } finally {
      save();
    }
  });
}

/** The hooks themselves work: a marker, a dialog, and a marker under the app's own CSP. */
async function canaries(browser) {
  const page = await openPage(browser, 'canary');
  page.__where = 'canary';
  await page.setContent(`<p>canary</p><script>window.__xss('canary.marker')</script><img src=x onerror="alert('canary.dialog')">`);
  const csp = (await (await page.context().request.get(url('/'))).headers())['content-security-policy'];
  if (!csp || !/default-src 'self'/.test(csp)) throw new Error(`the app's pages should carry a CSP; / has ${show(csp)}`);
  await page.route(url('/__injection-canary'), (route) =>
    route.fulfill({
      status: 200,
      contentType: 'text/html; charset=utf-8',
      headers: { 'content-security-policy': csp },
      body: `<!doctype html><title>canary</title><svg onload="window.__xss('canary.csp-bypassed')"></svg>`,
    }),
  );
  await page.goto(url('/__injection-canary'));
  await settle(page);
  await until(
    () => ['canary.marker', 'canary.dialog', 'canary.csp-bypassed'].every((t) => canaryHits.has(t)),
    () => `the hooks did not see every canary: ${show([...canaryHits])}`,
    { timeoutMs: 5_000 },
  );
  // The DOM scan sees what an escape creates, even what never runs.
  await page.setContent(`<p onmouseover="x()">a</p><a href=" javascript:x()">b</a><iframe></iframe><input autofocus>`);
  const { bad } = await scan(page);
  if (bad.length !== 4) throw new Error(`the DOM scan should see 4 injected things, it saw ${show(bad)}`);
  // The CSV reader unquotes, and the formula check sees a formula in any cell.
  const rows = parseCsv(`a,"b,""c""",\r\n"=1","x\r\ny",'-2\r\n`);
  if (show(rows) !== show([['a', 'b,"c"', ''], ['=1', 'x\r\ny', "'-2"]])) throw new Error(`the CSV reader read ${show(rows)}`);
  if (!FORMULA_START.test(rows[1][0]) || FORMULA_START.test(rows[1][2])) throw new Error('the formula check is wrong');
  await closePage(page);
}

/** An owner's active tenant and user ids, through the JSON API. */
async function ids(page) {
  const me = await api(page, 'GET', '/me');
  const tenants = await api(page, 'GET', '/tenants');
  return { userId: me.body.id, tenantId: tenants.body.items[0]?.id };
}

/** lettre's unquoted local part: mail to other addresses cannot be sent. */
const deliverable = (address) => /^[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@/.test(address);

// ---------------------------------------------------------------------------------------------
// Phase 1: tenants

/**
 * One payload's owner: signs up with it as organisation and display name (first refused for a
 * short password, so the form shows both again), verifies, reads the welcome email, invites,
 * has the invitee accept with the payload as name, uploads files, creates an API key, logs in
 * from a browser whose User-Agent is the payload, asks to change the email address and to
 * reset the password, signs up again with the same address, and fails a login with the
 * payload as address. Every page and email on the way is checked.
 */
async function ownerFlow(browser, entry) {
  const id = entry.id;
  const owner = {
    id,
    email: `owner-${slug(id)}@${DOMAIN}`,
    org: P('org', entry),
    name: P('name', entry),
    invitee: { email: `invitee-${slug(id)}@${DOMAIN}`, name: P('invitee_name', entry) },
  };
  const page = await openPage(browser, `owner ${id}`);
  const at = (what) => `${what} [owner of ${id}]`;

  // The sign-up form, refused for its password: what was typed comes back in the inputs.
  await page.goto(url('/signup'));
  const orgOk = await enter(field(page, 'Organisation name'), owner.org, 'org', entry);
  const nameOk = await enter(field(page, 'Your name'), owner.name, 'name', entry);
  if (!orgOk || !nameOk) return closePage(page);
  await field(page, 'Email').fill(owner.email);
  await field(page, 'Password').fill('x');
  await submit(page, 'Create account');
  await inspect(page, at('sign-up form shown again (short password)'), [E(`org.${id}`, typedText(owner.org)), E(`name.${id}`, typedText(owner.name))]);

  await field(page, 'Organisation name').fill(owner.org);
  await field(page, 'Your name').fill(owner.name);
  await field(page, 'Password').fill(PASSWORD);
  await submit(page, 'Create account');
  owner.org = typedText(owner.org);
  owner.name = typedText(owner.name);
  // Refused: the other fields still get this payload, under a plain organisation or name. The
  // form names one refused field at a time.
  const refusals = {};
  for (let attempt = 0; new URL(page.url()).pathname !== '/signup/check-inbox'; attempt += 1) {
    await inspect(page, at('sign-up refused'), [orgOf(owner), nameOf(owner)]);
    let refused = false;
    for (const [fieldName, input, plain] of [['org', '#organisation', `Plain org ${id}`], ['name', '#name', `Plain owner ${id}`]]) {
      const errors = await page.locator('.field', { has: page.locator(input) }).locator('.field-error').allInnerTexts();
      if (errors.length) {
        refusals[fieldName] = `refused: ${errors.join(' / ')}`;
        owner[fieldName] = plain;
        owner[`${fieldName}Plain`] = true;
        refused = true;
      }
    }
    if (!refused || attempt === 2) throw new Error(`the sign-up of ${id} was refused: ${await formErrors(page)}`);
    await field(page, 'Organisation name').fill(owner.org);
    await field(page, 'Your name').fill(owner.name);
    await field(page, 'Password').fill(PASSWORD);
    await submit(page, 'Create account');
  }
  cover('org', entry, refusals.org ?? 'accepted');
  cover('name', entry, refusals.name ?? 'accepted');
  const orgE = orgOf(owner);
  const nameE = nameOf(owner);
  const mail = await openPage(browser, `mail client of ${id}`);

  const verify = await waitForMessage(owner.email, { subjectIncludes: 'Confirm your email' });
  await renderEmail(mail, verify, at('verification email'), [nameE]);
  await page.goto(linkFrom(verify.text, '/verify?token='));
  await expectPath(page, '/dashboard');
  const welcome = await waitForMessage(owner.email, { subjectIncludes: 'Welcome to Tenantkit' });
  await renderEmail(mail, welcome, at('welcome email'), [nameE, orgE], [orgE]);
  Object.assign(owner, await ids(page));

  await visit(page, '/dashboard', at('dashboard'), [orgE, nameE], { status: 200 });
  await visit(page, '/account', at('account'), [nameE, E(`email.owner`, owner.email)], { status: 200 });
  await visit(page, '/account/two-factor', at('two-factor settings'), [nameE], { status: 200 });
  await visit(page, '/billing', at('billing'), [orgE], { status: 200 });
  await visit(page, '/audit', at('audit log'), [orgE], { status: 200 });

  // Invitations: a teammate, the collector (invited everywhere), and the payload as address.
  await page.goto(url('/team'));
  for (const email of [owner.invitee.email, collector.email]) {
    await field(page, 'Email address to invite').fill(email);
    await submit(page, 'Send invitation');
    await expectPath(page, '/team');
  }
  const inviteTyped = asEmail('invite_email', entry);
  if (await enter(field(page, 'Email address to invite'), inviteTyped, 'invite_email', entry)) {
    await submit(page, 'Send invitation');
    const invite = inviteTyped.replace(/[\r\n]/g, '').trim();
    if (await page.locator('main .field-error, main .error').count()) {
      cover('invite_email', entry, `refused: ${await formErrors(page)}`);
      await inspect(page, at('invitation form shown again'), [E(`invite_email.${id}`, invite)]);
    } else {
      cover('invite_email', entry, 'accepted');
      owner.inviteEmail = invite;
    }
  }

  // The teammate accepts with the payload as their name.
  const invitation = await waitForMessage(owner.invitee.email, { subjectIncludes: 'invited you to join' });
  await renderEmail(mail, invitation, at('invitation email'), [nameE, orgE], [nameE, orgE]);
  const invitee = await openPage(browser, `invitee ${id}`);
  await invitee.goto(linkFrom(invitation.text, '/invitations/accept?token='));
  await inspect(invitee, at('invitation page'), [E(`invitee.email`, owner.invitee.email)]);
  if (await enter(field(invitee, 'Your name'), owner.invitee.name, 'invitee_name', entry)) {
    await field(invitee, 'Password').fill(PASSWORD);
    await submit(invitee, 'Accept invitation');
    owner.invitee.name = typedText(owner.invitee.name);
    if (new URL(invitee.url()).pathname === '/dashboard') {
      cover('invitee_name', entry, 'accepted');
    } else {
      // Refused: the teammate joins under a plain name, so the admin's actions on users still
      // get this payload as their reasons.
      cover('invitee_name', entry, `refused: ${await formErrors(invitee)}`);
      await inspect(invitee, at('accept form shown again'), [inviteeOf(owner)]);
      owner.invitee.name = `Plain teammate ${id}`;
      owner.invitee.namePlain = true;
      await field(invitee, 'Your name').fill(owner.invitee.name);
      await field(invitee, 'Password').fill(PASSWORD);
      await submit(invitee, 'Accept invitation');
      await expectPath(invitee, '/dashboard');
    }
    owner.invitee.accepted = true;
    await inspect(invitee, at("invitee's dashboard"), [orgE, inviteeOf(owner)]);
  }
  await closePage(invitee);
  await visit(page, '/team', at('team'), [
    orgE,
    nameE,
    owner.invitee.accepted ? inviteeOf(owner) : null,
    owner.inviteEmail ? E(`invite_email.${id}`, owner.inviteEmail) : null,
  ].filter(Boolean), { status: 200 });

  await filesFlow(page, owner, entry, orgE);
  await apiKeyFlow(page, owner, entry);
  await userAgentFlow(browser, page, owner, entry);
  await emailChangeFlow(page, mail, owner, entry, nameE);
  await anonymousFlows(browser, mail, owner, entry, nameE);

  state.owners[id] = owner;
  await closePage(page);
  await closePage(mail);
}

/**
 * Files: the payload as a file name (API, exact bytes) at the root and as a folder (API);
 * then through the page's own upload (files.js, which swaps the answer's list in place) with
 * the payload as the chosen file's name; the root and the folder pages are checked.
 */
async function filesFlow(page, owner, entry, orgE) {
  const id = entry.id;
  const at = (what) => `${what} [owner of ${id}]`;
  const content = Buffer.from(`plain text for ${id}\n`);
  const upload = (name, folder) =>
    api(page, 'POST', `/tenants/${owner.tenantId}/files?name=${encodeURIComponent(name)}${folder ? `&folder=${encodeURIComponent(folder)}` : ''}`, {
      data: content,
      headers: { 'content-type': 'application/octet-stream' },
    });

  const fileName = P('file', entry);
  const named = await upload(fileName);
  if (named.status === 201) {
    cover('file', entry, 'accepted');
    owner.file = named.body.name;
    if (owner.file !== fileName) finding('NAME CHANGED', at('file upload (API)'), `sent ${show(fileName)}, stored ${show(owner.file)}`);
  } else {
    cover('file', entry, `refused: ${named.status} ${named.body?.detail ?? named.text}`);
  }

  const folderName = P('folder', entry);
  const inFolder = await upload(`in-folder-${slug(id)}.txt`, folderName);
  if (inFolder.status === 201) {
    cover('folder', entry, 'accepted');
    owner.folder = inFolder.body.folder;
  } else {
    cover('folder', entry, `refused: ${inFolder.status} ${inFolder.body?.detail ?? inFolder.text}`);
  }
  const topSegment = owner.folder?.split('/').filter(Boolean)[0];
  await visit(page, '/files', at('files'), [
    orgE,
    owner.file ? E(`file.${id}`, owner.file) : null,
    topSegment ? E(`folder.${id}`, topSegment) : null,
  ].filter(Boolean), { status: 200 });
  const folderPath = owner.folder ? `/files?folder=${encodeURIComponent(owner.folder)}` : '/files';
  if (owner.folder) {
    await visit(page, folderPath, at('folder'), [E(`folder.${id}`, `Folder ${owner.folder}`), E('file.in-folder', `in-folder-${slug(id)}.txt`)], {
      status: 200,
    });
  }

  // The page's own upload: Chromium sends the chosen name (quotes as %22, CR/LF as %0D/%0A).
  const uiName = P('file_ui', entry);
  const sent = uiName.replace(/"/g, '%22').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
  await page.goto(url(folderPath));
  try {
    await field(page, 'File to upload').setInputFiles({ name: uiName, mimeType: 'text/plain', buffer: content });
  } catch (error) {
    cover('file_ui', entry, `not enterable in Chromium: ${error.message.split('\n')[0]}`);
    return;
  }
  page.__where = at('files page upload (in place)');
  await page.getByRole('button', { name: 'Upload', exact: true }).click();
  const status = page.locator('#upload-status');
  await until(
    async () => /^(?!Uploading)./.test((await status.innerText()).trim()),
    async () => `the upload of ${show(uiName)} did not finish: ${show(await status.innerText())}`,
    { timeoutMs: 30_000 },
  );
  const said = (await status.innerText()).trim();
  const stored = /uploaded/i.test(said) && (await status.getAttribute('class')) !== 'error';
  cover('file_ui', entry, stored ? 'accepted' : `refused: ${said}`);
  await inspect(page, at('files page after the upload (in place)'), stored ? [E(`file_ui.${id}`, sent)] : []);
  if (stored) {
    owner.uiFile = sent;
    await visit(page, folderPath, at('files page reloaded after the upload'), [E(`file_ui.${id}`, sent)], { status: 200 });
  }
}

/** The payload as an API key's label, seen in the browser's view of the JSON. */
async function apiKeyFlow(page, owner, entry) {
  const label = P('apikey', entry);
  const created = await api(page, 'POST', `/tenants/${owner.tenantId}/api-keys`, { data: { name: label, role: 'member' } });
  if (created.status !== 201) {
    cover('apikey', entry, `refused: ${created.status} ${created.body?.detail ?? created.text}`);
    return;
  }
  cover('apikey', entry, 'accepted');
  owner.apiKey = created.body.key?.name ?? label;
  await visit(page, `/api/v1/tenants/${owner.tenantId}/api-keys`, `API keys as JSON [owner of ${entry.id}]`, [E(`apikey.${entry.id}`, inJson(owner.apiKey))], {
    status: 200,
  });
}

/** A login from a browser whose User-Agent is the payload: the sessions page names the device. */
async function userAgentFlow(browser, page, owner, entry) {
  const agent = P('ua', entry);
  // A header value is Latin-1 without CR/LF; anything else cannot be sent by any browser.
  if (!/^[\t\x20-\x7e]*$/.test(agent)) {
    cover('ua', entry, 'not sendable: a User-Agent is printable ASCII');
    return;
  }
  const other = await openPage(browser, `owner ${entry.id} (odd browser)`, { userAgent: agent });
  await logIn(other, owner.email, PASSWORD, `login with an odd User-Agent [owner of ${entry.id}]`);
  await expectPath(other, '/dashboard');
  await closePage(other);
  cover('ua', entry, 'accepted');
  owner.device = agent.replace(/[\u0000-\u001f\u007f]/g, '').trim();
  await visit(page, '/sessions', `sessions [owner of ${entry.id}]`, [E(`ua.${entry.id}`, owner.device)], { status: 200 });
}

/** The payload as the new email address: shown again after a wrong password, then emailed. */
async function emailChangeFlow(page, mail, owner, entry, nameE) {
  const id = entry.id;
  const typed = asEmail('new_email', entry);
  await page.goto(url('/account'));
  if (!(await enter(field(page, 'New email'), typed, 'new_email', entry))) return;
  await field(page, 'Password for email change').fill('not the password');
  await submit(page, 'Change email');
  const sent = typed.replace(/[\r\n]/g, '').trim();
  await inspect(page, `account form shown again [owner of ${id}]`, [E(`new_email.${id}`, sent)]);
  await field(page, 'New email').fill(typed);
  await field(page, 'Password for email change').fill(PASSWORD);
  await submit(page, 'Change email');
  if (await page.locator('main .field-error, main .error').count()) {
    cover('new_email', entry, `refused: ${await formErrors(page)}`);
    await inspect(page, `account form, address refused [owner of ${id}]`, [E(`new_email.${id}`, sent)]);
    return;
  }
  await inspect(page, `account after asking to change the address [owner of ${id}]`, [nameE]);
  if (!deliverable(sent)) {
    cover('new_email', entry, 'accepted (no email: the mailer cannot address it)');
    return;
  }
  cover('new_email', entry, 'accepted');
  const change = await waitForMessage(sent, { subjectIncludes: 'Confirm your new email address' });
  await renderEmail(mail, change, `email-change email [owner of ${id}]`, [nameE, E(`new_email.${id}`, sent)]);
}

/**
 * Without a session: the password-reset email and the "you already have an account" email
 * (both carry the name), and a failed login with the payload as address (the form shows it
 * again; the admin's audit log shows it in phase 2).
 */
async function anonymousFlows(browser, mail, owner, entry, nameE) {
  const id = entry.id;
  const page = await openPage(browser, `visitor ${id}`);
  await page.goto(url('/password/forgot'));
  await field(page, 'Email').fill(owner.email);
  await submit(page, 'Send reset link');
  const reset = await waitForMessage(owner.email, { subjectIncludes: 'Reset your Tenantkit password' });
  await renderEmail(mail, reset, `password reset email [owner of ${id}]`, [nameE]);

  await page.goto(url('/signup'));
  await field(page, 'Organisation name').fill(`Second try ${id}`);
  await field(page, 'Your name').fill('Someone');
  await field(page, 'Email').fill(owner.email);
  await field(page, 'Password').fill(PASSWORD);
  await submit(page, 'Create account');
  await expectPath(page, '/signup/check-inbox');
  const exists = await waitForMessage(owner.email, { subjectIncludes: 'You already have a Tenantkit account' });
  await renderEmail(mail, exists, `account-exists email [owner of ${id}]`, [nameE]);

  const typed = P('login_email', entry);
  await page.goto(url('/login'));
  if (await enter(field(page, 'Email'), typed, 'login_email', entry)) {
    await field(page, 'Password').fill('not the password');
    page.__where = `failed login [${id}]`;
    const [response] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), page.getByRole('button', { name: 'Log in', exact: true }).click()]);
    // An email input keeps no line breaks and trims; the server trims again.
    const kept = typedText(typed);
    if (response.status() < 500) {
      cover('login_email', entry, 'accepted');
      state.loginFailures[id] = kept;
      await inspect(page, `login form shown again [${id}]`, [E(`login_email.${id}`, kept)]);
    } else {
      cover('login_email', entry, `server error ${response.status()}`);
    }
  }
  await closePage(page);
}

/** The payload as an address: signs up through the form (tests/tests/injection.rs verifies it). */
async function emailUserSignup(browser, entry) {
  const id = entry.id;
  const typed = asEmail('email', entry);
  const page = await openPage(browser, `email user ${id}`);
  await page.goto(url('/signup'));
  await field(page, 'Organisation name').fill(`Mailbox ${id}`);
  await field(page, 'Your name').fill(`Mailbox owner ${id}`);
  if (!(await enter(field(page, 'Email'), typed, 'email', entry))) return closePage(page);
  await field(page, 'Password').fill(PASSWORD);
  page.__where = `sign-up with the payload as address [${id}]`;
  await submit(page, 'Create account');
  const kept = typed.replace(/[\r\n]/g, '').trim();
  if (new URL(page.url()).pathname === '/signup/check-inbox') {
    cover('email', entry, 'accepted');
    state.emailUsers[id] = { id, typed, email: kept, org: `Mailbox ${id}`, name: `Mailbox owner ${id}` };
  } else {
    cover('email', entry, `refused: ${await formErrors(page)}`);
    await inspect(page, `sign-up form shown again (address refused) [${id}]`, [E(`email.${id}`, kept)]);
  }
  await closePage(page);
}

/** A text file, an HTML file and an SVG carrying scripts: opened directly, none runs. */
async function fileContentFlow(browser) {
  const owner = Object.values(state.owners)[0];
  const page = await openPage(browser, 'file contents');
  await logIn(page, owner.email, PASSWORD, 'file contents: login');
  await expectPath(page, '/dashboard');
  const files = [
    ['notes.txt', `Plain notes, then markup:\n<script>window.__xss('file_content.txt')</script><img src=x onerror=alert('file_content.txt')>\n`],
    ['page.html', `<!doctype html><script>window.__xss('file_content.html')</script><img src=x onerror=alert('file_content.html')>`],
    ['image.svg', `<svg xmlns="http://www.w3.org/2000/svg" onload="window.__xss('file_content.svg')"><script>alert('file_content.svg')</script></svg>`],
  ];
  for (const [name, body] of files) {
    const created = await api(page, 'POST', `/tenants/${owner.tenantId}/files?name=${name}`, {
      data: Buffer.from(body),
      headers: { 'content-type': 'application/octet-stream' },
    });
    if (created.status !== 201) throw new Error(`uploading ${name} answered ${created.status}: ${created.text}`);
    const path = `/files/${created.body.id}/content`;
    const head = await page.context().request.get(url(path));
    const disposition = head.headers()['content-disposition'] ?? '';
    page.__where = `file content ${name}`;
    if (disposition.startsWith('attachment')) {
      // Opened directly it is a download, never a document.
      const download = page.waitForEvent('download', { timeout: 10_000 });
      await page.goto(url(path)).catch(() => {});
      await (await download).cancel().catch(() => {});
      state.fileContents = { ...(state.fileContents ?? {}), [name]: `attachment (${head.headers()['content-type']})` };
    } else {
      await page.goto(url(path));
      await inspect(page, `file content ${name} opened in the browser`, [E('file_content', 'file_content.txt')]);
      state.fileContents = { ...(state.fileContents ?? {}), [name]: `inline (${head.headers()['content-type']})` };
    }
  }
  await closePage(page);
}

/**
 * Half of the corpus's owners (a phase stays within the browser time limit); the second half
 * also signs people up with payload addresses and opens files carrying scripts.
 */
async function phaseOwners(browser, part) {
  await phaseStep('the hooks see a marker, a dialog and a marker under the app CSP (canaries)', () => canaries(browser));
  const half = Math.ceil(CORPUS.length / 2);
  const mine = part === 1 ? CORPUS.slice(0, half) : CORPUS.slice(half);
  await phaseStep(`${mine.length} owners (${mine.map((e) => e.id).join(', ')}): sign-up, emails, team, invitations, files, API keys, sessions, account`, () =>
    pool(mine, CONCURRENCY, (entry) => ownerFlow(browser, entry)),
  );
  if (part === 2) {
    await phaseStep(`${CORPUS.length} people sign up with the payload as their address`, () =>
      pool(CORPUS, CONCURRENCY, (entry) => emailUserSignup(browser, entry)),
    );
    await phaseStep('files with scripts inside are never run when opened', () => fileContentFlow(browser));
  }
}

// ---------------------------------------------------------------------------------------------
// Phase 2: admin

/** Enters the current TOTP code, waiting for the next step when this one was used. */
async function enterCode(page, secret, usedStep) {
  const current = totpStep();
  const useStep = current > usedStep ? current : usedStep + 1;
  if (useStep > totpStep()) await page.waitForTimeout(useStep * 30 * 1000 - Date.now() + 500);
  await field(page, 'Authentication code').fill(totp(secret, useStep * 30));
  await submit(page, 'Verify');
  return useStep;
}

/** People whose address is the payload log in (typing it) and read their pages. */
async function emailUserPages(browser, user) {
  const page = await openPage(browser, `email user ${user.id}`);
  await logIn(page, user.typed, PASSWORD, `login typing the payload address [${user.id}]`);
  if (new URL(page.url()).pathname !== '/dashboard') {
    throw new Error(`${show(user.typed)} could not log in: ${await formErrors(page)}`);
  }
  const mine = E(`email.${user.id}`, user.email);
  await visit(page, '/dashboard', `dashboard [email user ${user.id}]`, [E('email.org', user.org)], { status: 200 });
  await visit(page, '/account', `account [email user ${user.id}]`, [mine], { status: 200 });
  await visit(page, '/team', `team [email user ${user.id}]`, [mine], { status: 200 });
  await closePage(page);
}

/** The collector accepts every organisation's invitation: the tenant switch lists them all. */
async function collectorFlow(browser) {
  const page = await openPage(browser, 'collector');
  await logIn(page, collector.email, collector.password, 'collector login');
  await expectPath(page, '/dashboard');
  const owners = Object.values(state.owners);
  const invitations = readMaildir().filter(
    (m) => m.subject.includes('invited you to join') && (m.headers.get('x-rcptto') ?? [m.to]).join(' ').toLowerCase().includes(collector.email),
  );
  const links = [...new Set(invitations.map((m) => linkFrom(m.text, '/invitations/accept?token=')))];
  if (links.length < owners.length) {
    throw new Error(`the collector has ${links.length} invitation emails, expected ${owners.length} (one per organisation)`);
  }
  for (const link of links) {
    await page.goto(link);
    await inspect(page, 'collector: invitation page');
    await submit(page, 'Accept invitation');
    await expectPath(page, '/dashboard');
  }
  await visit(page, '/dashboard', 'collector: dashboard with every organisation in the tenant switch', owners.map((o) => orgOf(o)), {
    status: 200,
  });
  await closePage(page);
}

/** An admin form on the page: reason, confirmation, button; returns the answer's status. */
async function adminAction(page, formId, reason, buttonName, label) {
  page.__where = label;
  const form = page.locator(`#${formId}`);
  await form.locator('input[name=reason]').fill(reason);
  await form.locator('input[name=confirm]').check();
  const [response] = await Promise.all([
    page.waitForNavigation({ waitUntil: 'load' }),
    form.getByRole('button', { name: buttonName, exact: true }).click(),
  ]);
  return response.status();
}

/**
 * One tenant in the admin area: its page; the plan changed (to one with the audit export),
 * overrides with the payload as an unknown key, a suspension (the owner sees the suspended
 * page) and a reactivation, each with the payload as reason; then the owner impersonated
 * read-only with the payload as reason (the banner shows the admin's name).
 */
async function adminOnTenant(browser, page, owner) {
  const entry = CORPUS.find((e) => e.id === owner.id);
  const id = owner.id;
  const tenantPath = `/admin/tenants/${owner.tenantId}`;
  const orgE = orgOf(owner);
  const people = [
    orgE,
    nameOf(owner),
    E('email.owner', owner.email),
    E('email.collector', collector.email),
    owner.invitee.accepted ? inviteeOf(owner) : E('invitee.email', owner.invitee.email),
    owner.inviteEmail ? E(`invite_email.${id}`, owner.inviteEmail) : null,
  ].filter(Boolean);
  await visit(page, tenantPath, `admin: tenant ${id}`, people, { status: 200 });

  const reasons = (state.reasons[id] = {});
  const act = async (fieldName, formId, buttonName, extra = async () => {}) => {
    const reason = P(fieldName, entry);
    await page.goto(url(tenantPath));
    await extra();
    const status = await adminAction(page, formId, reason, buttonName, `admin: ${buttonName} [${id}]`);
    const kept = typedText(reason);
    if (status < 400) {
      cover(fieldName, entry, 'accepted');
      reasons[fieldName] = kept;
      return true;
    }
    cover(fieldName, entry, status >= 500 ? `server error ${status}` : `refused: ${status} ${await formErrors(page)}`);
    if (status < 500) await inspect(page, `admin: ${buttonName} refused [${id}]`, [orgE]);
    return false;
  };

  await act('reason_plan', 'plan-form', 'Change plan', () => page.locator('#plan-form select[name=plan]').selectOption('business'));

  // Overrides with the payload as an unknown key: the refusal names the key.
  await page.goto(url(tenantPath));
  const key = P('overrides', entry);
  await page.locator('#overrides').fill(JSON.stringify({ [key]: 1 }));
  const status = await adminAction(page, 'entitlements-form', `checking overrides ${id}`, 'Save overrides', `admin: overrides [${id}]`);
  if (status === 422) {
    cover('overrides', entry, 'reflected (refused as it should be; the message names the key)');
    await inspect(page, `admin: overrides refused [${id}]`, [E(`overrides.${id}`, key)]);
  } else {
    cover('overrides', entry, `answered ${status}`);
    if (status >= 500) finding('server error', `admin: overrides [${id}]`, `${status} for the key ${show(key)}`);
  }

  const ownerPage = await openPage(browser, `owner ${id} (phase 2)`);
  await logIn(ownerPage, owner.email, PASSWORD, `owner login [${id}]`);
  await expectPath(ownerPage, '/dashboard');
  if (await act('reason_suspend', 'suspend-form', 'Suspend tenant')) {
    await inspect(page, `admin: tenant suspended [${id}]`, [orgE, E(`reason_suspend.${id}`, reasons.reason_suspend)]);
    await visit(ownerPage, '/dashboard', `owner's suspended page [${id}]`, [orgE], { status: 403 });
    await act('reason_reactivate', 'reactivate-form', 'Reactivate tenant');
    await visit(ownerPage, '/dashboard', `owner's dashboard after reactivation [${id}]`, [orgE], { status: 200 });
  } else {
    cover('reason_reactivate', entry, 'not tried: the suspension failed');
  }
  await closePage(ownerPage);
  await visit(
    page,
    tenantPath,
    `admin: tenant with its recent audit events [${id}]`,
    [orgE, ...Object.entries(reasons).map(([f, r]) => E(`${f}.${id}`, r))],
    { status: 200 },
  );

  // Impersonation: the banner names the admin (payloads) and the owner.
  await visit(page, `/admin/users/${owner.userId}`, `admin: user page of the owner [${id}]`, [nameOf(owner), E('email.owner', owner.email), orgE], {
    status: 200,
  });
  const reason = P('reason_impersonate', entry);
  const answered = await adminAction(page, 'impersonate-form', reason, 'Impersonate', `admin: impersonate [${id}]`);
  if (answered >= 400) {
    cover('reason_impersonate', entry, answered >= 500 ? `server error ${answered}` : `refused: ${answered} ${await formErrors(page)}`);
    return;
  }
  cover('reason_impersonate', entry, 'accepted');
  reasons.reason_impersonate = typedText(reason);
  await inspect(page, `impersonating: dashboard with the banner [${id}]`, [E('admin_name', admin.name), E('email.owner', owner.email), orgE]);
  await visit(page, '/team', `impersonating: team [${id}]`, [orgE, nameOf(owner)], { status: 200 });
  await submit(page, 'Stop impersonating', page.locator('#impersonation-banner'));
  await expectPath(page, `/admin/users/${owner.userId}`);
}

/** The lists, searches and filters of the admin area, the audit log and its CSV. */
async function adminLists(page) {
  const owners = Object.values(state.owners);
  const emailUsers = Object.values(state.emailUsers);
  await visit(page, '/admin', 'admin: dashboard', [], { status: 200 });
  await visit(page, '/admin/jobs', 'admin: jobs', [], { status: 200 });
  await visit(page, '/admin/tenants', 'admin: tenants', [
    ...owners.map((o) => orgOf(o)),
    ...owners.map((o) => E('email.owner', o.email)),
    ...emailUsers.map((u) => E(`email.${u.id}`, u.email)),
  ], { status: 200 });

  // Users over their pages: every name and address somewhere in the list.
  const { text, links: userLinks } = await userDirectory(page);
  const people = [
    ...owners.flatMap((o) => [
      { email: o.email, name: o.name, key: nameOf(o).key, orgs: [orgOf(o)] },
      { email: o.invitee.email, name: o.invitee.accepted ? o.invitee.name : null, key: inviteeOf(o).key, orgs: [orgOf(o)], skip: !o.invitee.accepted },
    ]),
    ...emailUsers.map((u) => ({ email: u.email, name: u.name, key: `email.${u.id}`, emailKey: `email.${u.id}`, orgs: [E('email.org', u.org)] })),
    { email: admin.email, name: admin.name, key: 'admin_name', orgs: [] },
  ].filter((p) => !p.skip);
  for (const person of people) {
    for (const [key, value] of [[person.emailKey ?? 'email.person', person.email], [person.key, person.name]]) {
      if (value === null) continue;
      if (fold(text).includes(fold(value))) state.hits[key] = (state.hits[key] ?? 0) + 1;
      else finding('NOT SHOWN LITERALLY', 'admin: users (all pages)', `${key}: expected ${show(value)}`);
    }
    const href = userLinks.get(person.email);
    if (!href) {
      finding('NOT SHOWN LITERALLY', 'admin: users (all pages)', `no link to the user ${show(person.email)}`);
      continue;
    }
    await visit(page, href, `admin: user ${person.email}`, [E(person.emailKey ?? 'email.person', person.email), person.name ? E(person.key, person.name) : null, ...person.orgs].filter(Boolean), {
      status: 200,
    });
  }

  // Searches and filters show what was typed, as typed.
  for (const entry of CORPUS) {
    const q = P('admin_search', entry);
    await visit(page, `/admin/tenants?q=${encodeURIComponent(q)}`, `admin: tenant search [${entry.id}]`, [E(`admin_search.${entry.id}`, q.replace(/[\r\n]/g, ''))]);
    const u = P('user_search', entry);
    await visit(page, `/admin/users?q=${encodeURIComponent(u)}`, `admin: user search [${entry.id}]`, [E(`user_search.${entry.id}`, u.replace(/[\r\n]/g, ''))]);
    const action = P('audit_action', entry);
    const actor = P('audit_actor', entry);
    await visit(page, `/admin/audit?action=${encodeURIComponent(action)}&actor=${encodeURIComponent(actor)}`, `admin: audit filter [${entry.id}]`, [
      E(`audit_action.${entry.id}`, action.replace(/[\r\n]/g, '')),
      E(`audit_actor.${entry.id}`, actor.replace(/[\r\n]/g, '')),
    ]);
    const tenant = P('audit_tenant', entry);
    await visit(page, `/admin/audit?tenant=${encodeURIComponent(tenant)}`, `admin: audit filter with a bad tenant id [${entry.id}]`, [
      E(`audit_tenant.${entry.id}`, tenant.replace(/[\r\n]/g, '')),
    ]);
    for (const f of ['admin_search', 'user_search', 'audit_action', 'audit_actor', 'audit_tenant']) cover(f, entry, 'reflected');
  }

  // The audit log: typed login addresses (in the detail's JSON) and every reason.
  await visit(page, '/admin/audit?action=login.failure', 'admin: audit log, failed logins', Object.entries(state.loginFailures).map(([id, typed]) => E(`login_email.${id}`, inJson(typed))), {
    status: 200,
  });
  const reasons = Object.entries(state.reasons).flatMap(([id, byField]) => Object.entries(byField).map(([f, r]) => ({ id, f, r })));
  await visit(page, '/admin/audit?action=admin.tenant', 'admin: audit log, tenant actions', reasons.filter((x) => x.f !== 'reason_impersonate').map((x) => E(`${x.f}.${x.id}`, x.r)), {
    status: 200,
  });
  await visit(page, '/admin/audit?action=admin.user.impersonate', 'admin: audit log, impersonations', reasons.filter((x) => x.f === 'reason_impersonate').map((x) => E(`${x.f}.${x.id}`, x.r)), {
    status: 200,
  });
  const userReasons = Object.entries(state.userReasons).flatMap(([id, byField]) => Object.entries(byField).map(([f, r]) => ({ id, f, r })));
  for (const [fieldName, action] of [
    ['reason_end_sessions', 'admin.user.end_sessions'],
    ['reason_lock', 'admin.user.lock'],
    ['reason_unlock', 'admin.user.unlock'],
    ['reason_reset', 'admin.user.force_password_reset'],
  ]) {
    await visit(page, `/admin/audit?action=${action}`, `admin: audit log, ${action}`, userReasons.filter((x) => x.f === fieldName).map((x) => E(`${x.f}.${x.id}`, x.r)), {
      status: 200,
    });
  }
  const jobReasons = Object.entries(state.jobReasons).map(([id, r]) => E(`reason_job.${id}`, r));
  await visit(page, '/admin/audit?action=admin.job', 'admin: audit log, dead-job decisions', jobReasons, { status: 200 });

  const csv = await page.context().request.get(url('/admin/audit?format=csv'));
  if (csv.status() !== 200 || !(csv.headers()['content-type'] ?? '').startsWith('text/csv')) {
    throw new Error(`the admin's audit export answered ${csv.status()} ${csv.headers()['content-type']}`);
  }
  checkCsv(await csv.text(), "admin's audit export (/admin/audit?format=csv)", [
    ...owners.map((o) => orgOf(o)),
    ...reasons.map((x) => E(`${x.f}.${x.id}`, x.r)),
    ...userReasons.map((x) => E(`${x.f}.${x.id}`, x.r)),
    ...jobReasons,
    ...emailUsers.map((u) => E(`email.${u.id}`, u.email)),
  ]);
}

async function phaseAdmin(browser) {
  await phaseStep('the hooks see a marker, a dialog and a marker under the app CSP (canaries)', () => canaries(browser));
  const emailUsers = Object.values(state.emailUsers);
  await phaseStep(`${emailUsers.length} people log in typing their payload address and read their pages`, () =>
    pool(emailUsers, CONCURRENCY, (user) => emailUserPages(browser, user)),
  );
  await phaseStep('the collector accepts every invitation; the tenant switch lists every organisation', () => collectorFlow(browser));

  const page = await openPage(browser, 'admin');
  await phaseStep('the admin (named with payloads) signs in and enrols two-factor', async () => {
    await logIn(page, admin.email, admin.password, 'admin login');
    await expectPath(page, '/account/two-factor');
    await inspect(page, 'admin: two-factor enrolment', [E('admin_name', admin.name)]);
    const secret = (await page.locator('#totp-secret').innerText()).replace(/\s+/g, '');
    const left = 30 - ((Date.now() / 1000) % 30);
    if (left < 4) await page.waitForTimeout(left * 1000 + 200);
    await field(page, 'Authentication code').fill(totp(secret));
    await submit(page, 'Enable two-factor');
    await page.locator('#recovery-codes li').first().waitFor();
    state.admin = { secret, step: totpStep() };
    await visit(page, '/admin', 'admin: dashboard', [E('admin_name', admin.name)], { status: 200 });
  });
  const owners = Object.values(state.owners);
  await phaseStep(`the admin acts on ${owners.length} tenants with payload reasons and impersonates their owners`, async () => {
    for (const owner of owners) await adminOnTenant(browser, page, owner);
  });
}

/** The admin's own session again: password, then the next TOTP code. */
async function adminLogIn(browser) {
  const page = await openPage(browser, 'admin');
  await logIn(page, admin.email, admin.password, 'admin login');
  await expectPath(page, '/login/two-factor');
  state.admin.step = await enterCode(page, state.admin.secret, state.admin.step);
  await expectPath(page, '/dashboard');
  return page;
}

/** Every user of the admin's list (all its pages): the text shown, and each address's link. */
async function userDirectory(page) {
  let text = '';
  const links = new Map();
  let next = '/admin/users';
  while (next) {
    text += await visit(page, next, 'admin: users', [], { status: 200 });
    for (const [href, email] of await page.locator('#users tbody tr td:first-child a').evaluateAll((as) => as.map((a) => [a.getAttribute('href'), a.textContent]))) {
      links.set(email, href);
    }
    next = (await page.locator('#next-page').count()) ? await page.locator('#next-page').getAttribute('href') : null;
  }
  return { text, links };
}

/**
 * The admin's actions on a user, each with the payload as reason, on the teammate whose name
 * is the payload: end sessions, lock, unlock, force a password reset (whose email carries the
 * name).
 */
async function adminOnUser(page, owner, links) {
  const entry = CORPUS.find((e) => e.id === owner.id);
  const id = owner.id;
  const href = links.get(owner.invitee.email);
  if (!href) throw new Error(`the admin's user list has no ${owner.invitee.email}`);
  const reasons = (state.userReasons[id] = {});
  const nameE = owner.invitee.accepted ? inviteeOf(owner) : null;
  for (const [fieldName, action, buttonName] of [
    ['reason_end_sessions', 'end-sessions', 'End sessions'],
    ['reason_lock', 'lock', 'Lock user'],
    ['reason_unlock', 'unlock', 'Unlock user'],
    ['reason_reset', 'reset-password', 'Force password reset'],
  ]) {
    await visit(page, href, `admin: user page of the teammate [${id}]`, [nameE].filter(Boolean), { status: 200 });
    if (!(await page.locator(`#${action}-form`).count())) {
      // Unlocking needs a lock, which may have failed (a finding of its own).
      cover(fieldName, entry, `not tried: the page offers no "${buttonName}"`);
      continue;
    }
    const reason = P(fieldName, entry);
    const status = await adminAction(page, `${action}-form`, reason, buttonName, `admin: ${buttonName} [${id}]`);
    if (status < 400) {
      cover(fieldName, entry, 'accepted');
      reasons[fieldName] = typedText(reason);
    } else {
      cover(fieldName, entry, status >= 500 ? `server error ${status}` : `refused: ${status} ${await formErrors(page)}`);
    }
  }
  if (reasons.reason_reset && nameE) {
    const mail = await openPage(page.context().browser(), `mail client (teammate ${id})`);
    const reset = await waitForMessage(owner.invitee.email, { subjectIncludes: 'Reset your Tenantkit password' });
    await renderEmail(mail, reset, `forced password reset email [teammate of ${id}]`, [nameE]);
    await closePage(mail);
  }
}

/** Dead jobs (failed mail to payload addresses): their errors shown, each retried or discarded with a payload reason. */
async function adminOnJobs(page) {
  for (const [index, entry] of CORPUS.entries()) {
    await visit(page, '/admin/jobs', 'admin: jobs', [], { status: 200 });
    const row = page.locator('#dead-jobs tbody tr').first();
    if (!(await row.count())) {
      cover('reason_job', entry, 'not tried: no dead job left');
      continue;
    }
    const [decision, buttonName] = index % 2 ? ['discard', 'Discard'] : ['retry', 'Retry'];
    const form = row.locator('form').filter({ has: page.getByRole('button', { name: buttonName, exact: true }) });
    const reason = P('reason_job', entry);
    page.__where = `admin: ${decision} a dead job [${entry.id}]`;
    await form.locator('input[name=reason]').fill(reason);
    await form.locator('input[name=confirm]').check();
    const [response] = await Promise.all([page.waitForNavigation({ waitUntil: 'load' }), form.getByRole('button', { name: buttonName, exact: true }).click()]);
    if (response.status() < 400) {
      cover('reason_job', entry, `accepted (${decision})`);
      state.jobReasons[entry.id] = typedText(reason);
      await inspect(page, `admin: jobs after ${decision} [${entry.id}]`);
    } else {
      cover('reason_job', entry, response.status() >= 500 ? `server error ${response.status()}` : `refused: ${response.status()} ${await formErrors(page)}`);
    }
  }
}

async function phaseAdmin2(browser) {
  await phaseStep('the hooks see a marker, a dialog and a marker under the app CSP (canaries)', () => canaries(browser));
  const page = await phaseStep('the admin signs in again with a code', () => adminLogIn(browser));
  const owners = Object.values(state.owners);
  await phaseStep(`the admin ends sessions, locks, unlocks and resets ${owners.length} teammates with payload reasons`, async () => {
    const { links } = await userDirectory(page);
    for (const owner of owners.filter((o) => o.invitee.accepted)) await adminOnUser(page, owner, links);
  });
  await phaseStep('the admin retries and discards dead jobs with payload reasons', () => adminOnJobs(page));
  await phaseStep('the admin lists, searches, filters and exports the audit log', () => adminLists(page));
}

// ---------------------------------------------------------------------------------------------
// Phase 3: final

/** An owner reads the audit log (the admin's reasons), filters it, and exports it twice. */
async function ownerAudit(browser, owner) {
  const id = owner.id;
  const page = await openPage(browser, `owner ${id} (phase 3)`);
  await logIn(page, owner.email, PASSWORD, `owner login [${id}]`);
  await expectPath(page, '/dashboard');
  const orgE = orgOf(owner);
  const reasons = Object.entries(state.reasons[id] ?? {})
    .filter(([f]) => f !== 'reason_impersonate')
    .map(([f, r]) => E(`${f}.${id}`, r));
  await visit(page, '/audit', `audit log [owner of ${id}]`, [orgE, ...reasons], { status: 200 });

  if (!state.reasons[id]?.reason_plan) {
    // The plan change failed (a finding of the admin phase): this tenant has no export.
    state.csv.skipped = [...(state.csv.skipped ?? []), id];
    await closePage(page);
    return;
  }
  const csv = await page.context().request.get(url('/audit?format=csv'));
  if (csv.status() === 200) {
    checkCsv(await csv.text(), `audit export of ${id} (/audit?format=csv)`, [orgE, ...reasons]);
  } else {
    finding('CSV', `audit export of ${id}`, `/audit?format=csv answered ${csv.status()} (the plan was changed to one with the export)`);
  }
  const exported = await api(page, 'GET', `/tenants/${owner.tenantId}/audit-events/export`);
  if (exported.status === 200) {
    checkCsv(exported.text, `audit export of ${id} (API)`, [orgE, ...reasons]);
  } else {
    finding('CSV', `API audit export of ${id}`, `answered ${exported.status}: ${exported.text.slice(0, 200)}`);
  }
  await closePage(page);
}

function summary() {
  const fields = Object.keys(state.coverage).sort();
  const lines = ['', '=== injection corpus summary ==='];
  lines.push(`payloads: ${CORPUS.length} (${CORPUS.map((e) => e.id).join(', ')})`);
  lines.push(`fields: ${fields.length}; field × payload combinations tried: ${fields.reduce((n, f) => n + Object.keys(state.coverage[f]).length, 0)}`);
  for (const f of fields) {
    const outcomes = state.coverage[f];
    const accepted = Object.keys(outcomes).filter((id) => /^(accepted|reflected)/.test(outcomes[id]));
    const checked = Object.keys(outcomes).filter((id) => /^checked/.test(outcomes[id]));
    const shown = accepted.reduce((n, id) => n + (state.hits[`${f}.${id}`] ?? 0), 0);
    const others = Object.entries(outcomes).filter(([id]) => !accepted.includes(id) && !checked.includes(id));
    const short = (o) => o.replace(/ \{"errors".*?"message":"([^"]*)".*$/, ' $1');
    lines.push(
      `  ${f.padEnd(22)} ` +
        (checked.length
          ? `${checked.length}/${Object.keys(outcomes).length} ${outcomes[checked[0]]}`
          : `${String(accepted.length).padStart(2)}/${Object.keys(outcomes).length} accepted, seen literally ${shown}×`) +
        (others.length ? `; ${others.map(([id, o]) => `${id}: ${short(o)}`).join('; ')}` : ''),
    );
  }
  for (const key of ['admin_name', 'org.plain', 'name.plain', 'invitee_name.plain']) {
    if (state.hits[key]) lines.push(`  ${key.padEnd(22)} seen literally ${state.hits[key]}×`);
  }
  const routes = Object.entries(state.routes).sort();
  lines.push(`pages: ${state.inspections} inspections of ${routes.length} routes:`);
  for (const [route, n] of routes) lines.push(`  ${route} ×${n}`);
  lines.push(`emails rendered: ${Object.values(state.emails).reduce((a, b) => a + b, 0)} (${Object.entries(state.emails).map(([k, n]) => `${k} ×${n}`).join(', ')})`);
  lines.push(`files opened directly: ${Object.entries(state.fileContents ?? {}).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  lines.push(
    `CSV: ${state.csv.files} exports, ${state.csv.cells} cells checked, ${state.csv.neutralised} neutralised with '` +
      (state.csv.skipped?.length ? `; no export for ${state.csv.skipped.join(', ')} (its plan change failed)` : ''),
  );
  lines.push(`findings: ${state.findings.length}`);
  for (const f of state.findings) lines.push(`  [${f.kind}] (${f.phase}) ${f.where}: ${f.detail}`);
  console.log(lines.join('\n'));
}

/**
 * Query strings that pages may echo: the tenant's audit filters, a folder, the tokens of the
 * emailed links, the page to return to after logging in (and that it never leaves the app),
 * and a path that does not exist.
 */
async function reflections(browser) {
  const owner = Object.values(state.owners)[0];
  const page = await openPage(browser, 'owner (reflections)');
  await logIn(page, owner.email, PASSWORD, 'owner login (reflections)');
  await expectPath(page, '/dashboard');
  const visitor = await openPage(browser, 'visitor (reflections)');
  const q = encodeURIComponent;
  for (const entry of CORPUS) {
    const id = entry.id;
    const action = P('tenant_audit_action', entry);
    const actor = P('tenant_audit_actor', entry);
    await visit(page, `/audit?action=${q(action)}&actor=${q(actor)}`, `audit log filter [${id}]`, [
      E(`tenant_audit_action.${id}`, action.replace(/[\r\n]/g, '')),
      E(`tenant_audit_actor.${id}`, actor.replace(/[\r\n]/g, '')),
    ]);
    await visit(page, `/files?folder=${q(P('folder_query', entry))}`, `files with a folder in the query [${id}]`);
    for (const [path, fieldName] of [
      ['/verify', 'token_verify'],
      ['/password/reset', 'token_reset'],
      ['/invitations/accept', 'token_invitation'],
      ['/account/email/confirm', 'token_email'],
    ]) {
      await visit(visitor, `${path}?token=${q(P(fieldName, entry))}`, `${path} with a payload token [${id}]`);
      cover(fieldName, entry, 'checked (an error page; nothing to echo)');
    }
    await visit(visitor, `/login?next=${q(P('next', entry))}`, `login with a payload next [${id}]`);
    await visit(visitor, `/${q(P('path', entry))}`, `a path that does not exist [${id}]`);
    for (const f of ['tenant_audit_action', 'tenant_audit_actor']) cover(f, entry, 'reflected');
    cover('folder_query', entry, 'checked (the folder page or its error)');
    cover('next', entry, 'checked (only in the form action, URL-encoded)');
    cover('path', entry, 'checked (the not-found page)');
  }
  // After logging in, `next` may lead anywhere in the app, never out of it and never to script.
  for (const next of ["javascript:alert('next.redirect')", '//evil.test/', '/\\evil.test/', 'https://evil.test/', "/<svg/onload=window.__xss('next.path')>"]) {
    await visitor.goto(url(`/login?next=${q(next)}`));
    await field(visitor, 'Email').fill(owner.email);
    await field(visitor, 'Password').fill(PASSWORD);
    visitor.__where = `login with next=${show(next)}`;
    await submit(visitor, 'Log in');
    if (new URL(visitor.url()).origin !== new URL(url('/')).origin) {
      finding('OPEN REDIRECT', `login with next=${show(next)}`, `ended at ${visitor.url()}`);
    }
    await inspect(visitor, `after login with next=${show(next)}`);
    await submit(visitor, 'Log out').catch(() => {});
  }
  await closePage(visitor);
  await closePage(page);
}

async function phaseFinal(browser) {
  await phaseStep('the hooks see a marker, a dialog and a marker under the app CSP (canaries)', () => canaries(browser));
  const owners = Object.values(state.owners);
  await phaseStep(`${owners.length} owners read, filter and export their audit log`, () => pool(owners, CONCURRENCY, (owner) => ownerAudit(browser, owner)));
  await phaseStep('query strings the pages may echo (filters, folder, tokens, next, path)', () => reflections(browser));
  summary();
  await phaseStep('nothing ran, nothing was injected, everything was shown, no CSV cell starts a formula', async () => {
    if (state.findings.length) {
      const kinds = {};
      for (const f of state.findings) kinds[f.kind] = (kinds[f.kind] ?? 0) + 1;
      throw new Error(
        `${state.findings.length} finding(s), listed in the summary above: ${Object.entries(kinds).map(([k, n]) => `${k} ×${n}`).join(', ')}`,
      );
    }
  });
}

// ---------------------------------------------------------------------------------------------

const phases = {
  'owners-1': (browser) => phaseOwners(browser, 1),
  'owners-2': (browser) => phaseOwners(browser, 2),
  admin: phaseAdmin,
  'admin-2': phaseAdmin2,
  final: phaseFinal,
};
if (!phases[PHASE]) throw new Error(`PHASE must be one of ${Object.keys(phases).join(', ')}, not ${show(PHASE)}`);
await journey(`injection corpus, phase ${PHASE}`, async (browser) => {
  await phases[PHASE](browser);
  save();
});
