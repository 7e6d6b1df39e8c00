// The team journey: two organisations and a person in both, by labels and button text only.
// Two owners sign up organisations of their own; one invites the other (an existing user), who
// accepts while signed in and switches between the two; a third address is invited, the
// invitation resent and revoked; a member is removed, invited again, demoted; the last owner
// may not leave, transfers ownership and then leaves; a session is revoked from another
// browser; the password and then the email address are changed.
//
// Run by tests/tests/browser.rs (BASE_URL, TENANTKIT_TEST_MAILDIR, TENANTKIT_TEST_ARTIFACTS).

import {
  expectHidden,
  expectNoText,
  expectPath,
  expectText,
  expectVisible,
  journey,
  newPage,
  shot,
  signUp,
  step,
  submit,
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
const orgA = `Alpha Works ${run}`;
const orgB = `Beta Studio ${run}`;
const ada = { name: 'Ada Alpha', email: `ada-${run}@alpha.test`, password: `alpha owner passphrase ${run}` };
const bob = {
  name: 'Bob Beta',
  email: `bob-${run}@beta.test`,
  password: `beta owner passphrase ${run}`,
  newPassword: `bob chose another passphrase ${run}`,
  newEmail: `robert-${run}@beta-new.test`,
};
const cy = { email: `cy-${run}@gamma.test` };

const header = (page) => page.locator('header');

const emailLink = emailLinks();

async function activeTenant(page) {
  const tenant = page.locator('#active-tenant');
  return (await tenant.count()) ? (await tenant.innerText({ timeout: 1_000 })).trim() : null;
}

/** The header names `organisation` as the active one (#active-tenant). */
async function expectActiveTenant(page, organisation) {
  await until(
    async () => (await activeTenant(page)) === organisation,
    async () =>
      `on ${new URL(page.url()).pathname}, expected #active-tenant to read ${JSON.stringify(organisation)}, saw ${JSON.stringify(
        (await activeTenant(page).catch(() => '?')) ?? '(no #active-tenant)',
      )}`,
  );
}

/** The tenant switcher's options and the selected one; null when there is no switcher. */
async function switcher(page) {
  const select = field(page, 'Tenant');
  if (!(await select.count())) return null;
  return select.evaluate((s) => ({
    options: [...s.options].map((o) => o.textContent.trim()),
    selected: s.selectedOptions[0]?.textContent.trim() ?? null,
  }));
}

/** The switcher offers exactly `organisations`, with `selected` chosen. */
async function expectSwitcher(page, organisations, selected) {
  const want = [...organisations].sort();
  await until(
    async () => {
      const seen = await switcher(page);
      return seen && JSON.stringify([...seen.options].sort()) === JSON.stringify(want) && seen.selected === selected;
    },
    async () =>
      `on ${new URL(page.url()).pathname}, expected the tenant switcher ("Tenant" + "Switch") to offer ${JSON.stringify(want)} ` +
      `with ${JSON.stringify(selected)} selected, saw ${JSON.stringify(await switcher(page).catch(() => '?'))}`,
  );
  await expectVisible(button(page, 'Switch'));
}

async function expectNoSwitcher(page) {
  const seen = await switcher(page);
  if (seen) throw new Error(`on ${new URL(page.url()).pathname} a tenant switcher is shown for one organisation: ${JSON.stringify(seen)}`);
}

/** The header shows nothing of `organisation`: not active, not in the switcher. */
async function expectNotInHeader(page, organisation) {
  await expectNoText(header(page), organisation);
  const seen = await switcher(page);
  if (seen?.options.includes(organisation)) {
    throw new Error(`the tenant switcher still offers ${JSON.stringify(organisation)}: ${JSON.stringify(seen)}`);
  }
}

async function switchTo(page, organisation) {
  await field(page, 'Tenant').selectOption({ label: organisation });
  await submit(page, 'Switch');
  await expectPath(page, '/dashboard');
  await expectActiveTenant(page, organisation);
  await expectVisible(heading(page, organisation));
}

async function openNav(page, name, path, organisation) {
  await link(page.getByRole('navigation'), name).click();
  await expectPath(page, path);
  if (organisation) await expectActiveTenant(page, organisation);
}

/** Every page of the navigation names `organisation` as active (and the switcher selects it). */
async function expectActiveEverywhere(page, organisation, organisations) {
  for (const [name, path] of [
    ['Team', '/team'],
    ['Sessions', '/sessions'],
    ['Security', '/account/two-factor'],
    ['Account', '/account'],
    ['Dashboard', '/dashboard'],
  ]) {
    await openNav(page, name, path, organisation);
    if (organisations) await expectSwitcher(page, organisations, organisation);
  }
}

/** The emails of the team table's members. */
async function memberEmails(page) {
  return (await page.locator('table tbody tr td:nth-child(2)').allInnerTexts()).map((t) => t.trim()).sort();
}

async function expectMembers(page, emails) {
  const want = [...emails].sort();
  await until(
    async () => JSON.stringify(await memberEmails(page)) === JSON.stringify(want),
    async () => `expected the team of ${await activeTenant(page)} to be ${JSON.stringify(want)}, it lists ${JSON.stringify(await memberEmails(page))}`,
  );
}

const memberRow = (page, email) => page.locator('table tbody tr').filter({ hasText: email });

async function expectRole(page, email, role) {
  const cell = memberRow(page, email).locator('td:nth-child(3)');
  await until(
    async () => (await cell.innerText({ timeout: 1_000 })).trim() === role,
    async () => `expected ${email} to be ${role} on the team page, saw ${JSON.stringify(await cell.innerText().catch(() => '(no such row)'))}`,
  );
}

async function expectNotice(page, text) {
  await expectText(page.locator('.notice'), text);
}

async function logOut(page) {
  await submit(page, 'Log out');
  await expectPath(page, '/');
}

async function fillLogin(page, email, password) {
  await field(page, 'Email').fill(email);
  await field(page, 'Password').fill(password);
  await submit(page, 'Log in');
}

async function logIn(page, email, password) {
  await page.goto(url('/login'));
  await fillLogin(page, email, password);
  await expectPath(page, '/dashboard');
}

/** A login that must be refused: back on /login with an error. */
async function refusedLogin(page, email, password, why) {
  await page.goto(url('/login'));
  await fillLogin(page, email, password);
  if (new URL(page.url()).pathname !== '/login') {
    throw new Error(`${why}, but logging in as ${email} led to ${page.url()}`);
  }
  await expectVisible(page.locator('.error'));
}

async function invite(page, email, role) {
  await openNav(page, 'Team', '/team');
  await field(page, 'Email address to invite').fill(email);
  await field(page, 'Role').selectOption(role);
  await submit(page, 'Send invitation');
  await expectPath(page, '/team');
  await expectNotice(page, 'Invitation sent.');
  await expectVisible(page.getByRole('listitem').filter({ hasText: `${email} (${role})` }));
}

/** B, signed in, opens an invitation to org A and accepts it. */
async function acceptAsSignedIn(page, role, activeBefore, shotName) {
  const accept = await emailLink(bob.email, '/invitations/accept?token=');
  await page.goto(accept);
  await expectPath(page, '/invitations/accept');
  await expectVisible(heading(page, `Join as ${role}`));
  await expectActiveTenant(page, activeBefore);
  // An existing, signed-in user is asked nothing but to accept.
  if (await field(page, 'Password').count()) {
    throw new Error('the invitation page asks a signed-in existing user for a password (a new-account form)');
  }
  await expectVisible(button(page, 'Accept invitation'));
  await shot(page, shotName);
  await submit(page, 'Accept invitation');
  await expectPath(page, '/dashboard');
  await expectActiveTenant(page, orgA);
  await expectText(page.getByRole('main'), `You are ${role} of ${orgA}`);
  await expectSwitcher(page, [orgA, orgB], orgA);
}

await journey('team journey', async (browser) => {
  const a = await newPage(browser, 'ada (owner of A)');
  const b = await newPage(browser, 'bob (owner of B)');

  await step('two owners sign up, each creating an organisation', async () => {
    await signUp(a, orgA, ada);
    await signUp(b, orgB, bob);
  });

  await step('each verifies through the emailed link and lands in their own organisation, without a switcher', async () => {
    for (const [page, person, organisation] of [[a, ada, orgA], [b, bob, orgB]]) {
      await page.goto(await emailLink(person.email, '/verify?token='));
      await expectPath(page, '/dashboard');
      await expectActiveTenant(page, organisation);
      await expectText(page.getByRole('main'), `You are owner of ${organisation}`);
      await expectNoSwitcher(page);
    }
  });

  await step("A invites B's owner (an existing user) to organisation A as admin", async () => {
    await invite(a, bob.email, 'admin');
    await shot(a, 'team-a-invited-bob');
  });

  await step('B, signed in, opens the invitation and accepts: B is in two organisations, with a switcher', async () => {
    await acceptAsSignedIn(b, 'admin', orgB, 'invitation-existing-user');
    await shot(b, 'switcher-two-orgs');
  });

  await step("B switches to organisation B: every page shows it, and the team page B's members only", async () => {
    await switchTo(b, orgB);
    await expectActiveEverywhere(b, orgB, [orgA, orgB]);
    await openNav(b, 'Team', '/team', orgB);
    await expectVisible(heading(b, `Team of ${orgB}`));
    await expectMembers(b, [bob.email]);
    await shot(b, 'team-b-active-org-b');
  });

  await step("B switches back to organisation A: every page shows it, and the team page A's members", async () => {
    await switchTo(b, orgA);
    await expectActiveEverywhere(b, orgA, [orgA, orgB]);
    await openNav(b, 'Team', '/team', orgA);
    await expectVisible(heading(b, `Team of ${orgA}`));
    await expectMembers(b, [ada.email, bob.email]);
    await shot(b, 'team-b-active-org-a');
  });

  const cyLinks = [];
  await step('A invites a third address, then resends the invitation: a second email arrives', async () => {
    await openNav(a, 'Team', '/team', orgA);
    await expectRole(a, bob.email, 'admin');
    await invite(a, cy.email, 'member');
    cyLinks.push(await emailLink(cy.email, '/invitations/accept?token='));
    const pending = a.getByRole('listitem').filter({ hasText: cy.email });
    await submit(a, 'Resend', pending);
    await expectPath(a, '/team');
    await expectNotice(a, 'Invitation sent again.');
    cyLinks.push(await emailLink(cy.email, '/invitations/accept?token='));
    await shot(a, 'team-a-pending-invitation');
  });

  const invitee = await newPage(browser, 'cy (invited, then revoked)');
  await step('A revokes the invitation: both emailed links then show an error page, not an accept form', async () => {
    const pending = a.getByRole('listitem').filter({ hasText: cy.email });
    await submit(a, 'Revoke', pending);
    await expectPath(a, '/team');
    await expectNotice(a, 'Invitation revoked.');
    await expectHidden(a.getByRole('listitem').filter({ hasText: cy.email }));
    for (const [i, accept] of cyLinks.entries()) {
      await invitee.goto(accept);
      await expectVisible(heading(invitee, 'This invitation cannot be used'));
      await expectVisible(invitee.locator('.error'));
      if (await button(invitee, 'Accept invitation').count()) {
        throw new Error(`the revoked invitation's link #${i + 1} still offers "Accept invitation"`);
      }
      if (await field(invitee, 'Password').count()) {
        throw new Error(`the revoked invitation's link #${i + 1} still shows a form asking for a password`);
      }
    }
    await shot(invitee, 'invitation-revoked');
  });

  await step("A removes B from organisation A: B's next page load no longer shows it", async () => {
    // B is on A's team page, with organisation A active.
    await openNav(a, 'Team', '/team', orgA);
    await submit(a, 'Remove', memberRow(a, bob.email));
    await expectPath(a, '/team');
    await expectNotice(a, 'Member removed.');
    await expectMembers(a, [ada.email]);
    await b.reload();
    await expectPath(b, '/team');
    await expectActiveTenant(b, orgB);
    await expectNotInHeader(b, orgA);
    await expectNoSwitcher(b);
    await expectVisible(heading(b, `Team of ${orgB}`));
    await expectMembers(b, [bob.email]);
    await shot(b, 'removed-from-org-a');
  });

  await step('A invites B again as admin; B accepts and is back in both organisations', async () => {
    await invite(a, bob.email, 'admin');
    await acceptAsSignedIn(b, 'admin', orgB, 'invitation-existing-user-again');
  });

  await step('A changes B\'s role from admin to member', async () => {
    await openNav(a, 'Team', '/team', orgA);
    const role = field(a, `Role for ${bob.email}`);
    await role.selectOption('member');
    await submit(a, 'Change role', role.locator('xpath=ancestor::form[1]'));
    await expectPath(a, '/team');
    await expectNotice(a, 'Role changed.');
    await expectRole(a, bob.email, 'member');
    await b.goto(url('/dashboard'));
    await expectActiveTenant(b, orgA);
    await expectText(b.getByRole('main'), `You are member of ${orgA}`);
  });

  await step('A, the only owner, tries to leave: refused with an explanation', async () => {
    await submit(a, 'Leave organisation');
    await expectText(a.locator('.error'), 'You are the last owner: transfer ownership before leaving.');
    await expectActiveTenant(a, orgA);
    await expectMembers(a, [ada.email, bob.email]);
    await shot(a, 'leave-refused-last-owner');
  });

  await step('A transfers ownership to B and becomes admin', async () => {
    await openNav(a, 'Team', '/team', orgA);
    await field(a, 'New owner').selectOption({ label: bob.email });
    await submit(a, 'Transfer ownership');
    await expectPath(a, '/team');
    await expectNotice(a, 'Ownership transferred.');
    await expectRole(a, bob.email, 'owner');
    await expectRole(a, ada.email, 'admin');
    await expectHidden(button(a, 'Transfer ownership'));
    await openNav(a, 'Dashboard', '/dashboard', orgA);
    await expectText(a.getByRole('main'), `You are admin of ${orgA}`);
    await b.goto(url('/dashboard'));
    await expectActiveTenant(b, orgA);
    await expectText(b.getByRole('main'), `You are owner of ${orgA}`);
  });

  await step("A leaves organisation A: A's header no longer shows it; B's team no longer lists A", async () => {
    await openNav(a, 'Team', '/team', orgA);
    await submit(a, 'Leave organisation');
    await expectPath(a, '/dashboard');
    await expectVisible(heading(a, 'No organisation'));
    if ((await activeTenant(a)) !== null) {
      throw new Error(`after leaving their only organisation, #active-tenant still reads ${JSON.stringify(await activeTenant(a))}`);
    }
    await expectNotInHeader(a, orgA);
    await expectNoSwitcher(a);
    await shot(a, 'after-leaving');
    await openNav(b, 'Team', '/team', orgA);
    await expectMembers(b, [bob.email]);
    await expectRole(b, bob.email, 'owner');
  });

  const b2 = await newPage(browser, 'bob (second browser)');
  await step('B signs in in a second browser; the sessions page lists both sessions', async () => {
    await logIn(b2, bob.email, bob.password);
    const active = await activeTenant(b2);
    if (active !== orgA && active !== orgB) {
      throw new Error(`after logging in, #active-tenant reads ${JSON.stringify(active)}, not one of B's organisations`);
    }
    await expectSwitcher(b2, [orgA, orgB], active);
    await openNav(b, 'Sessions', '/sessions', orgA);
    const rows = b.locator('table tbody tr');
    await until(async () => (await rows.count()) === 2, async () => `expected 2 sessions, the page lists ${await rows.count()}`);
    await expectVisible(b.getByText('This session'));
    await until(
      async () => (await button(b, 'Revoke').count()) === 1,
      async () => `expected one "Revoke" button (for the other session), saw ${await button(b, 'Revoke').count()}`,
    );
    await shot(b, 'sessions-two');
  });

  await step('B revokes the second session from the first: the second browser is signed out at its next navigation', async () => {
    await submit(b, 'Revoke');
    await expectPath(b, '/sessions');
    await until(
      async () => (await b.locator('table tbody tr').count()) === 1,
      async () => `after "Revoke", the sessions page still lists ${await b.locator('table tbody tr').count()} sessions`,
    );
    await expectHidden(button(b, 'Revoke'));
    await b2.goto(url('/dashboard'));
    await expectPath(b2, '/login');
    await b.goto(url('/dashboard'));
    await expectPath(b, '/dashboard');
    await expectActiveTenant(b, orgA);
  });

  await step('B changes the password: other sessions end; the old password is refused, the new one works', async () => {
    await logIn(b2, bob.email, bob.password);
    await openNav(b, 'Account', '/account', orgA);
    await field(b, 'Current password').fill(bob.password);
    await field(b, 'New password').fill(bob.newPassword);
    await submit(b, 'Change password');
    await expectNotice(b, 'Your password was changed. Your other sessions were signed out.');
    await shot(b, 'password-changed');
    // This session goes on; the other one is over.
    await b.goto(url('/dashboard'));
    await expectPath(b, '/dashboard');
    await b2.goto(url('/dashboard'));
    await expectPath(b2, '/login');
    await refusedLogin(b2, bob.email, bob.password, 'the old password should be refused after the change');
    await logIn(b2, bob.email, bob.newPassword);
    await logOut(b2);
  });

  let confirm;
  await step('B changes the email: a link arrives at the new address; until it is opened the old address logs in', async () => {
    await openNav(b, 'Account', '/account', orgA);
    await field(b, 'New email').fill(bob.newEmail);
    await field(b, 'Password for email change').fill(bob.newPassword);
    await submit(b, 'Change email');
    await expectNotice(b, 'Check the new address');
    await expectText(b.getByRole('main'), bob.email);
    confirm = await emailLink(bob.newEmail, '/account/email/confirm?token=');
    await refusedLogin(b2, bob.newEmail, bob.newPassword, 'the new address should not log in before its link is opened');
    await logIn(b2, bob.email, bob.newPassword);
    await logOut(b2);
  });

  await step('B opens the link: the new address logs in, the old one no longer does', async () => {
    await b2.goto(confirm);
    await expectVisible(heading(b2, 'Email address changed'));
    await shot(b2, 'email-changed');
    await refusedLogin(b2, bob.email, bob.newPassword, 'the old address should be refused once the new one is confirmed');
    await logIn(b2, bob.newEmail, bob.newPassword);
    await openNav(b2, 'Account', '/account');
    await expectText(b2.getByRole('main'), bob.newEmail);
    await shot(b2, 'account-new-email');
  });
  // Last, so that a failure here leaves every step above exercised.
  await step('the revoked invitation page says it was withdrawn and links back to the start page', async () => {
    await invitee.goto(cyLinks[0]);
    await expectVisible(heading(invitee, 'This invitation cannot be used'));
    await expectText(invitee.locator('.error'), 'withdrawn');
    await link(invitee.getByRole('main'), 'Back to the start page').click();
    await expectPath(invitee, '/');
    await expectVisible(link(invitee.getByRole('main'), 'Sign up'));
  });
});
