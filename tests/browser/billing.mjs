// The billing journey, in a browser, by labels and button text: an owner signs up, verifies
// through the emailed link, opens the billing page from the navigation (the Free plan, status
// none), chooses Team billed monthly, lands on the checkout page of the Stripe-compatible test
// server (tests/src/stripe), pays there, and comes back to /billing/success, which says Stripe
// is confirming the payment and reloads itself until the webhooks have arrived, then shows
// Team, active, with "Manage billing". Every page is loaded without console errors or CSP
// violations (lib.mjs fails any step in which a page reports one).
//
// Run by tests/tests/browser.rs, which starts the test server, configures the app's billing
// with it (plans Free, Team and Business) and passes STRIPE_URL, the test server's base URL
// (besides BASE_URL, TENANTKIT_TEST_MAILDIR and TENANTKIT_TEST_ARTIFACTS). It delivers the
// payment's webhook events late, a few seconds after the Pay button (whose own deliveries find
// no webhook URL), so the success page's waiting is seen every time.

import {
  button,
  emailLinks,
  expectHidden,
  expectPath,
  expectText,
  expectValue,
  expectVisible,
  field,
  heading,
  journey,
  link,
  newPage,
  shot,
  signUp,
  step,
  submit,
  unique,
  until,
  url,
  required,
} from './lib.mjs';

const stripeOrigin = new URL(required('STRIPE_URL')).origin;
const run = unique();
const organisation = `Gamma Goods ${run}`;
const owner = { name: 'Gil Gamma', email: `gil-${run}@gamma.test`, password: `gamma owner passphrase ${run}` };

const emailLink = emailLinks();

const cell = (page, id) => page.locator(`#${id}`);

/** The text of `#id`, trimmed ('' when the element is missing or the page is reloading). */
async function textOf(page, id) {
  const locator = cell(page, id);
  return (await locator.count()) ? (await locator.innerText({ timeout: 1_000 })).trim() : '';
}

/** The billing summary reads `plan` and `status`. */
async function expectSummary(page, plan, status, { timeoutMs = 15_000 } = {}) {
  await until(
    async () => (await textOf(page, 'current-plan')) === plan && (await textOf(page, 'subscription-status')) === status,
    async () =>
      `on ${page.url()}, expected the plan ${JSON.stringify(plan)} with status ${JSON.stringify(status)}, ` +
      `the page shows ${JSON.stringify(await textOf(page, 'current-plan').catch(() => '?'))} ` +
      `with status ${JSON.stringify(await textOf(page, 'subscription-status').catch(() => '?'))}`,
    { timeoutMs, intervalMs: 250 },
  );
}

await journey('billing journey', async (browser) => {
  const page = await newPage(browser, 'owner');

  await step('the owner signs up and verifies through the emailed link', async () => {
    await signUp(page, organisation, owner);
    await page.goto(await emailLink(owner.email, '/verify?token='));
    await expectPath(page, '/dashboard');
    await expectText(page.getByRole('main'), `You are owner of ${organisation}`);
  });

  await step('the Billing link opens the billing page: the Free plan, status none, Team and Business to choose', async () => {
    await link(page.getByRole('navigation'), 'Billing').click();
    await expectPath(page, '/billing');
    await expectVisible(heading(page, `Billing of ${organisation}`));
    await expectSummary(page, 'Free', 'none');
    await expectHidden(page.locator('#billing-not-configured'));
    await expectHidden(page.locator('#confirming'));
    // Nothing to manage before a first checkout.
    await expectHidden(button(page, 'Manage billing'));
    await expectVisible(button(page, 'Choose Team'));
    await expectVisible(button(page, 'Choose Business'));
    await expectHidden(button(page, 'Choose Free'));
    await shot(page, 'billing-free');
  });

  await step('the owner chooses Team, billed monthly, and lands on the checkout page of the test server', async () => {
    await field(page, 'Billing period for Team').selectOption('monthly');
    await expectValue(field(page, 'Billing period for Team'), 'monthly');
    // Not `submit`: its wait for the navigation would fail with a bare net::ERR_ABORTED when
    // the browser refuses to follow the redirect to Stripe; the problems the page reported (a
    // CSP violation, say) are listed with this step's failure.
    await button(page, 'Choose Team').click();
    await until(
      () => new URL(page.url()).origin === stripeOrigin,
      () => `expected "Choose Team" to lead to the test server's checkout at ${stripeOrigin}, the page is at ${page.url()}`,
      { timeoutMs: 15_000 },
    );
    await expectPath(page, /^\/checkout\/[^/]+$/);
    await expectVisible(heading(page, 'Subscribe to Team'));
    await expectText(page.locator('#terms'), 'Total due today: $29.00 per month.');
    await expectValue(field(page, 'Email'), owner.email);
    await shot(page, 'billing-checkout');
  });

  await step('the owner pays and is sent back to /billing/success, which says Stripe is confirming', async () => {
    await submit(page, 'Pay');
    await until(
      () => new URL(page.url()).origin === new URL(url('/')).origin,
      () => `expected Pay to lead back to the app, the page is at ${page.url()}`,
    );
    await expectPath(page, '/billing/success');
    if (!new URL(page.url()).searchParams.get('session_id')?.startsWith('cs_')) {
      throw new Error(`the success URL names no checkout session: ${page.url()}`);
    }
    await expectVisible(heading(page, `Billing of ${organisation}`));
    // The webhooks come a few seconds after the payment (tests/tests/browser.rs delivers them).
    await expectText(page.locator('#confirming'), 'Stripe is confirming your payment');
    await expectSummary(page, 'Free', 'none');
    await shot(page, 'billing-confirming');
  });

  await step('within 20 s the page, reloading itself, shows Team, active, and "Manage billing"', async () => {
    const started = Date.now();
    let loads = 0;
    const counted = () => {
      loads += 1;
    };
    page.on('load', counted);
    await expectSummary(page, 'Team', 'active', { timeoutMs: 20_000 });
    await page.waitForLoadState('load');
    page.off('load', counted);
    console.log(`  Team, active after ${((Date.now() - started) / 1000).toFixed(1)} s and ${loads} reload(s) by the page itself`);
    await expectPath(page, '/billing/success');
    await expectHidden(page.locator('#confirming'));
    await expectVisible(button(page, 'Manage billing'));
    await expectText(cell(page, 'seats'), '1 of 5');
    await expectText(page.locator('.plans li.current'), 'Team (current)');
    // The first invoice, paid at checkout.
    await expectText(page.locator('#invoices tbody tr'), '29.00 USD');
    await expectText(page.locator('#invoices tbody tr'), 'paid');
    await expectHidden(button(page, 'Choose Team'));
    await expectVisible(button(page, 'Choose Business'));
    await shot(page, 'billing-team-active');
  });

  await step('the billing page, opened afresh, shows the same', async () => {
    await link(page.getByRole('navigation'), 'Billing').click();
    await expectPath(page, '/billing');
    await expectSummary(page, 'Team', 'active');
    await expectVisible(button(page, 'Manage billing'));
    await expectHidden(page.locator('#confirming'));
  });
});
