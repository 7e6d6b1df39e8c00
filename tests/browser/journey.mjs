// The whole customer journey, as a new customer does it in a browser, by labels and button
// text only: sign up, verify the address, log in with "Remember me", invite a teammate who
// accepts in a browser of their own, change their role, enrol two-factor, log in with a code,
// reset the teammate's password, and look at the sessions and account pages.
//
// Run by tests/tests/browser.rs (BASE_URL, TENANTKIT_TEST_MAILDIR, TENANTKIT_TEST_ARTIFACTS).

import {
  expectPath,
  expectText,
  expectValue,
  expectVisible,
  journey,
  newPage,
  shot,
  step,
  submit,
  totp,
  totpStep,
  unique,
  until,
  url,
  button,
  emailLinks,
  field,
  heading,
  link,
} from './lib.mjs';

const run = unique();
const organisation = `Journey Labs ${run}`;
const owner = { name: 'Olivia Owner', email: `owner-${run}@journey.test`, password: `correct horse battery staple ${run}` };
const teammate = { name: 'Theo Teammate', email: `teammate-${run}@journey.test`, password: `tr0ub4dor and 3 ${run}` };
const teammateNewPassword = `a brand new passphrase ${run}`;


const emailLink = emailLinks();

/** The header says who is signed in where: #active-tenant holds the organisation's name. */
async function expectActiveTenant(page) {
  const tenant = page.locator('#active-tenant');
  await until(
    async () => (await tenant.innerText({ timeout: 1_000 })).trim() === organisation,
    async () =>
      `expected #active-tenant to read ${JSON.stringify(organisation)}, saw ${JSON.stringify(
        (await tenant.count()) ? await tenant.innerText().catch(() => '?') : '(no #active-tenant)',
      )}`,
  );
}

async function openNav(page, name, path) {
  await link(page, name).click();
  await expectPath(page, path);
  await expectActiveTenant(page);
}

async function logOut(page) {
  await submit(page, 'Log out');
  await expectPath(page, '/');
}

async function fillLogin(page, email, password, { remember = false } = {}) {
  await field(page, 'Email').fill(email);
  await field(page, 'Password').fill(password);
  if (remember) await field(page, 'Remember me').check();
  await submit(page, 'Log in');
}

/**
 * Whether a .field-error sits next to `input`: named by its aria-describedby, or inside the
 * largest container around the input that holds no other field, or between the input and the
 * field before it inside that container, or after the container (or input) before the next
 * field.
 */
async function fieldErrorNextTo(input) {
  return input.evaluate((el) => {
    const isError = (node) => node.classList?.contains('field-error') || !!node.querySelector?.('.field-error');
    const controls = 'input:not([type=hidden]), select, textarea, button';
    const hasControl = (node) => node.matches(controls) || !!node.querySelector(controls);
    const described = (el.getAttribute('aria-describedby') || '').split(/\s+/).filter(Boolean);
    if (described.map((id) => document.getElementById(id)).some((n) => n && isError(n))) return true;
    let wrapper = el;
    for (let box = el.parentElement; box && box !== el.form && box !== document.body; box = box.parentElement) {
      if (box.querySelectorAll(controls).length > 1) break;
      wrapper = box;
    }
    if (wrapper !== el && isError(wrapper)) return true;
    for (let node = el.previousElementSibling; node && !hasControl(node); node = node.previousElementSibling) {
      if (isError(node)) return true;
    }
    for (let node = wrapper.nextElementSibling; node && !hasControl(node); node = node.nextElementSibling) {
      if (isError(node)) return true;
    }
    return false;
  });
}

await journey('customer journey', async (browser) => {
  const page = await newPage(browser, 'owner');

  await step('the landing page links to sign-up and log-in', async () => {
    await page.goto(url('/'));
    const main = page.getByRole('main');
    await expectVisible(link(main, 'Log in'));
    await expectVisible(link(page.getByRole('navigation'), 'Log in'));
    await shot(page, 'landing');
    await link(main, 'Sign up').click();
    await expectPath(page, '/signup');
    await shot(page, 'signup');
  });

  await step('sign-up with an invalid email shows the error next to the field and keeps the input', async () => {
    await field(page, 'Organisation name').fill(organisation);
    await field(page, 'Your name').fill(owner.name);
    await field(page, 'Email').fill('not-an-email');
    await field(page, 'Password').fill(owner.password);
    // The browser's own check of type=email would stop the form before it is sent; the server
    // must catch it anyway, and that is what this step is about.
    await field(page, 'Email').evaluate((input) => {
      if (input.form) input.form.noValidate = true;
    });
    await submit(page, 'Create account');
    await expectVisible(page.locator('.field-error'));
    if (!(await fieldErrorNextTo(field(page, 'Email')))) {
      throw new Error('a .field-error is shown, but not next to the "Email" field');
    }
    await expectValue(field(page, 'Organisation name'), organisation);
    await expectValue(field(page, 'Password'), '');
    await shot(page, 'signup-invalid-email');
  });

  await step('sign up: "Check your inbox"', async () => {
    await field(page, 'Organisation name').fill(organisation);
    await field(page, 'Your name').fill(owner.name);
    await field(page, 'Email').fill(owner.email);
    await field(page, 'Password').fill(owner.password);
    await submit(page, 'Create account');
    await expectPath(page, '/signup/check-inbox');
    await expectVisible(heading(page, 'Check your inbox'));
    await shot(page, 'check-inbox');
  });

  await step('the verification email signs in to the dashboard of the new organisation', async () => {
    const verify = await emailLink(owner.email, '/verify?token=');
    await page.goto(verify);
    await expectPath(page, '/dashboard');
    await expectActiveTenant(page);
    await expectVisible(heading(page, organisation));
    for (const name of ['Dashboard', 'Team', 'Sessions', 'Security', 'Account']) {
      await expectVisible(link(page, name));
    }
    await expectVisible(page.getByRole('button', { name: 'Log out', exact: true }));
    await shot(page, 'dashboard');
  });

  await step('log out, then log in with "Remember me"', async () => {
    await logOut(page);
    await link(page.getByRole('main'), 'Log in').click();
    await expectPath(page, '/login');
    await fillLogin(page, owner.email, owner.password, { remember: true });
    await expectPath(page, '/dashboard');
    await expectActiveTenant(page);
    // Remembered: a cookie that outlives the browser (a session cookie has expires -1).
    const cookies = await page.context().cookies(url('/'));
    const dayFromNow = Date.now() / 1000 + 24 * 3600;
    if (!cookies.some((c) => c.expires > dayFromNow)) {
      throw new Error(
        `"Remember me" set no lasting cookie: ${cookies.map((c) => `${c.name} (expires ${c.expires})`).join(', ') || 'no cookies'}`,
      );
    }
  });

  await step('invite a teammate as member', async () => {
    await openNav(page, 'Team', '/team');
    await shot(page, 'team');
    await field(page, 'Email address to invite').fill(teammate.email);
    await field(page, 'Role').selectOption('member');
    await submit(page, 'Send invitation');
    await expectPath(page, '/team');
    await expectText(page.locator('body'), teammate.email);
  });

  await step('the owner logs out', async () => {
    await logOut(page);
  });

  const other = await newPage(browser, 'teammate');
  await step('the teammate accepts the invitation as a new user, in a browser of their own', async () => {
    const accept = await emailLink(teammate.email, '/invitations/accept?token=');
    await other.goto(accept);
    await expectPath(other, '/invitations/accept');
    await shot(other, 'invitation-accept');
    await field(other, 'Your name').fill(teammate.name);
    await field(other, 'Password').fill(teammate.password);
    await submit(other, 'Accept invitation');
    await expectPath(other, '/dashboard');
    await expectActiveTenant(other);
  });

  await step('the owner sees the teammate as member on the team page and makes them admin', async () => {
    await page.goto(url('/login'));
    await fillLogin(page, owner.email, owner.password);
    await expectPath(page, '/dashboard');
    await openNav(page, 'Team', '/team');
    await expectVisible(page.getByRole('row').filter({ hasText: teammate.email }));
    const role = field(page, `Role for ${teammate.email}`);
    await until(
      async () => (await role.inputValue({ timeout: 1_000 })).toLowerCase() === 'member',
      async () => `expected "Role for ${teammate.email}" to be member, it is ${await role.inputValue().catch(() => '(missing)')}`,
    );
    await role.selectOption('admin');
    // The "Change role" button of the form that holds this member's select.
    await submit(page, 'Change role', role.locator('xpath=ancestor::form[1]'));
    await expectPath(page, '/team');
    await until(
      async () => (await field(page, `Role for ${teammate.email}`).inputValue({ timeout: 1_000 })).toLowerCase() === 'admin',
      `after "Change role" the teammate's role is not admin`,
    );
  });

  let secret;
  let enrolledStep;
  await step('the owner enrols two-factor and is shown recovery codes', async () => {
    await openNav(page, 'Security', '/account/two-factor');
    const qr = page.getByRole('img', { name: 'QR code' });
    await expectVisible(qr);
    await until(
      () => qr.first().evaluate((img) => img.complete && img.naturalWidth > 0),
      'the QR code image did not load',
    );
    await shot(page, 'two-factor-enrol');
    secret = (await page.locator('#totp-secret').innerText()).replace(/\s+/g, '');
    // Never a code that expires on its way to the server.
    const left = 30 - ((Date.now() / 1000) % 30);
    if (left < 4) await page.waitForTimeout(left * 1000 + 200);
    const now = Date.now() / 1000;
    enrolledStep = totpStep(now);
    await field(page, 'Authentication code').fill(totp(secret, now));
    await submit(page, 'Enable two-factor');
    const codes = page.locator('#recovery-codes li');
    await expectVisible(codes);
    console.log(`  ${await codes.count()} recovery codes`);
    await shot(page, 'recovery-codes');
  });

  await step('log out and in again: the authentication code is asked for', async () => {
    await logOut(page);
    await page.goto(url('/login'));
    await fillLogin(page, owner.email, owner.password);
    await expectPath(page, '/login/two-factor');
    await expectVisible(field(page, 'Authentication code'));
    await shot(page, 'login-two-factor');
    // The code used for enrolment may not be used again: within the same 30 s step, send the
    // next step's code (accepted as clock drift by RFC 6238 verifiers).
    const current = totpStep();
    const useStep = current > enrolledStep ? current : enrolledStep + 1;
    const code = totp(secret, useStep * 30);
    await field(page, 'Authentication code').fill(code);
    await submit(page, 'Verify');
    if (new URL(page.url()).pathname === '/login/two-factor' && useStep > totpStep()) {
      // The server accepts no future step: wait for that step to become the current one.
      const wait = useStep * 30 * 1000 - Date.now() + 500;
      console.log(`  note: the next step's code was refused; sending it again in ${(wait / 1000).toFixed(1)} s, when it is current`);
      await page.waitForTimeout(wait);
      await field(page, 'Authentication code').fill(code);
      await submit(page, 'Verify');
    }
    await expectPath(page, '/dashboard');
    await expectActiveTenant(page);
  });

  await step('the teammate resets a forgotten password and logs in with the new one', async () => {
    await logOut(other);
    await other.goto(url('/password/forgot'));
    await field(other, 'Email').fill(teammate.email);
    await submit(other, 'Send reset link');
    await expectVisible(heading(other, 'Check your inbox'));
    const reset = await emailLink(teammate.email, '/password/reset?token=');
    await other.goto(reset);
    await expectPath(other, '/password/reset');
    await field(other, 'New password').fill(teammateNewPassword);
    await submit(other, 'Set password');
    await expectPath(other, '/login');
    await expectVisible(other.locator('.notice'));
    // The old password no longer opens the account.
    await fillLogin(other, teammate.email, teammate.password);
    await expectPath(other, '/login');
    await expectVisible(other.locator('.error'));
    await fillLogin(other, teammate.email, teammateNewPassword);
    await expectPath(other, '/dashboard');
    await expectActiveTenant(other);
  });

  await step('the sessions page lists this session', async () => {
    await openNav(page, 'Sessions', '/sessions');
    const rows = page.locator('table tbody tr');
    await expectVisible(rows);
    await expectVisible(page.getByText('This session'));
    console.log(`  ${await rows.count()} session(s)`);
    await shot(page, 'sessions');
  });

  await step('the account page offers password and email changes', async () => {
    await openNav(page, 'Account', '/account');
    for (const label of ['Current password', 'New password', 'New email', 'Password for email change']) {
      await expectVisible(field(page, label));
    }
    await expectVisible(page.getByRole('button', { name: 'Change password', exact: true }));
    await expectVisible(page.getByRole('button', { name: 'Change email', exact: true }));
    await shot(page, 'account');
  });
});
